//! The HTTP/1.1 transport under surf: async-h1 over TCP sockets on async-io's reactor
//! (the one async-std runs on), native TLS for `https://`, idle keep-alive connections
//! per origin, and a cap on response bodies.
//!
//! surf's own backends are not used: its `h1-client` pulls tokio in (through deadpool),
//! and its curl backend aborted the whole process with 5,000 calls in flight.

mod conn;
mod exchange;
mod limit;
mod pool;
mod tcp;
mod tls;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_native_tls::Certificate;
use http_client::{Error as HttpError, HttpClient, Request, Response};
use surf::http::headers::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use surf::http::url::Host;
use surf::http::{Body, Method};

use crate::error::ErrorKind;
use conn::Conn;
use exchange::{exchange, BadHead, ExchangeStream, WakeGuard};
pub(crate) use limit::BodyTooLarge;
use limit::LimitedBody;
use pool::{Origin, Pool, ReturnOnEnd};
use tls::Tls;

/// A failure the transport has already classified; the client reads the kind back.
#[derive(Debug)]
pub(crate) struct TransportError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl TransportError {
    fn connect(message: String) -> Self {
        TransportError {
            kind: ErrorKind::Connect,
            message,
        }
    }

    fn protocol(message: String) -> Self {
        TransportError {
            kind: ErrorKind::Protocol,
            message,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}

/// How far a call got, so that a timeout can say what it cut short. The client puts one
/// in the request's extensions; the transport moves it along.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU8);

impl Progress {
    const CONNECTING: u8 = 0;
    const WAITING: u8 = 1;
    const READING_BODY: u8 = 2;

    fn waiting(&self) {
        self.0.store(Self::WAITING, Ordering::Relaxed);
    }

    pub(crate) fn reading_body(&self) {
        self.0.store(Self::READING_BODY, Ordering::Relaxed);
    }

    /// The phase, in the words of a timeout message.
    pub(crate) fn phase(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            Self::CONNECTING => "while connecting",
            Self::WAITING => "waiting for the response",
            _ => "while reading the response body",
        }
    }
}

/// The `http_client::HttpClient` that surf sends through.
#[derive(Debug)]
pub(crate) struct Transport {
    pool: Pool,
    tls: Tls,
    body_limit: u64,
}

impl Transport {
    pub(crate) fn new(
        body_limit: u64,
        idle_timeout: Duration,
        extra_roots: Vec<Certificate>,
    ) -> Self {
        Transport {
            pool: Pool::new(idle_timeout),
            tls: Tls::new(extra_roots),
            body_limit,
        }
    }

    /// A new connection to `origin`, with the TLS handshake done for https.
    async fn open(&self, origin: &Origin) -> Result<Conn, TransportError> {
        let tcp = tcp::connect(&origin.host, origin.port).await?;
        if !origin.tls {
            return Ok(Conn::Plain(tcp));
        }
        // OpenSSL checks an IP address against the certificate only when it is written
        // bare: `[::1]`, as a URL writes it, would be checked as a host name and fail.
        let domain = match &origin.host {
            Host::Domain(name) => name.clone(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        Ok(Conn::tls(self.tls.handshake(&domain, tcp).await?))
    }
}

#[http_client::async_trait]
impl HttpClient for Transport {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        let url = req.url();
        let origin = Origin {
            tls: url.scheme() == "https",
            host: url
                .host()
                .map(|h| h.to_owned())
                .ok_or_else(|| TransportError::connect(format!("url `{url}` has no host")))?,
            port: url
                .port_or_known_default()
                .ok_or_else(|| TransportError::connect(format!("url `{url}` has no port")))?,
        };
        let is_head = req.method() == Method::Head;
        let progress = req.ext().get::<Arc<Progress>>().cloned();
        let conn = match self.pool.checkout(&origin) {
            Some(conn) => conn,
            None => self.open(&origin).await?,
        };
        if let Some(progress) = &progress {
            progress.waiting();
        }

        let stream = ExchangeStream::new(conn.clone());
        let mut res = exchange(stream.clone(), req)
            .await
            .map_err(|e| TransportError::protocol(describe_exchange_error(&e)))?;
        stream.head_read();

        let keep_alive = !res.header(CONNECTION).is_some_and(|values| {
            values
                .iter()
                .flat_map(|v| v.as_str().split(','))
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        });
        if !has_body(&res, is_head)? {
            drop(res.take_body());
            if keep_alive {
                self.pool.checkin(origin, conn);
            }
            return Ok(res);
        }
        let announced = res.len().map(|len| len as u64);
        let body = WakeGuard::new(res.take_body(), stream);
        let body = LimitedBody::new(body, self.body_limit, announced);
        let home = keep_alive.then(|| (self.pool.clone(), origin, conn));
        // No length on the outer body: http-types stops reading at a known length without
        // asking the reader below, and then the end would never be seen.
        res.set_body(Body::from_reader(ReturnOnEnd::new(body, home), None));
        Ok(res)
    }
}

/// Whether a reply has a body to read, or why it cannot be read.
fn has_body(res: &Response, is_head: bool) -> Result<bool, TransportError> {
    let status = u16::from(res.status());
    if (100..200).contains(&status) {
        // The final reply follows an interim one, and async-h1 has already dropped
        // whatever of it arrived with the interim head: refuse, and close.
        return Err(TransportError::protocol(format!(
            "the server sent an interim {status} reply, which is not supported"
        )));
    }
    if is_head || status == 204 || status == 304 {
        return Ok(false);
    }
    if let Some(coding) = res.header(TRANSFER_ENCODING) {
        // async-h1 decodes a body only when the last coding is exactly `chunked`, and
        // otherwise leaves it on the wire unread, where the next reply would find it.
        let coding = coding.last().as_str();
        if coding != "chunked" {
            return Err(TransportError::protocol(format!(
                "the reply's Transfer-Encoding `{coding}` is not supported (only `chunked`)"
            )));
        }
        return Ok(true);
    }
    if res.header(CONTENT_LENGTH).is_none() {
        // async-h1 reads such a body as empty: refuse rather than report a wrong `null`.
        return Err(TransportError::protocol(
            "the reply has neither Content-Length nor chunked Transfer-Encoding \
             (bodies delimited by closing the connection are not supported)"
                .to_owned(),
        ));
    }
    Ok(true)
}

/// Words for what went wrong between sending the request and reading the reply head.
fn describe_exchange_error(err: &HttpError) -> String {
    if let Some(io) = err.downcast_ref::<io::Error>() {
        if let Some(head) = io.get_ref().and_then(|e| e.downcast_ref::<BadHead>()) {
            return format!("the reply is not valid HTTP/1.1 ({head})");
        }
        return match io.kind() {
            io::ErrorKind::ConnectionReset => "the server reset the connection".to_owned(),
            io::ErrorKind::BrokenPipe => {
                "the server closed the connection while the request was sent".to_owned()
            }
            _ => format!("connection failed while exchanging the request ({io})"),
        };
    }
    match err.to_string().as_str() {
        "connection closed" => "the server closed the connection without replying".to_owned(),
        "empty response" => {
            "the server closed the connection in the middle of the reply head".to_owned()
        }
        "Invalid status code" => {
            "the reply's status code is not one http-types knows (such as 499 or 520)".to_owned()
        }
        other => format!("the reply is not valid HTTP/1.1 ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Transport>();
    }
}
