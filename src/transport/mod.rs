//! The HTTP/1.x transport under surf: our own reply reading (httparse for the head, the
//! framing of RFC 9112 for the body, content codings decoded as the body arrives) over
//! TCP sockets on async-io's reactor (the one async-std runs on), rustls (or, with the
//! `native-tls` feature, OpenSSL) for `https://`, and idle keep-alive connections per
//! origin.
//!
//! surf's own backends are not used: its `h1-client` pulls tokio in (through deadpool),
//! and its curl backend aborted the whole process with 5,000 calls in flight. Nor is
//! async-h1's reply decoder: it refused HTTP/1.0, close-delimited bodies, 1xx replies,
//! statuses http-types does not know and non-ASCII header values, all of which real
//! servers send.

mod body;
mod conn;
mod decode;
mod error;
mod head;
mod limit;
mod pool;
mod request;
mod tcp;
mod tls;
mod wire;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::future::{self, Either, FutureExt};
use http_client::{Error as HttpError, HttpClient, Request, Response};
use surf::http::url::Host;
use surf::http::{Method, StatusCode};

use crate::error::ErrorKind;
use crate::headers::Headers;
use crate::phase::Phase;
use body::Framing;
use conn::Conn;
use decode::Decoder;
pub(crate) use decode::ACCEPT_ENCODING;
pub(crate) use error::{Replay, TransportError};
pub(crate) use head::DEFAULT_MAX_HEAD_BYTES;
use limit::LimitedBody;
use pool::{Origin, Pool};
pub(crate) use request::{encode, Outgoing};
pub(crate) use tls::Certificate;
use tls::Tls;
use wire::Wire;

/// The transport's settings, from the client builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) body_limit: u64,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_origin: usize,
    pub(crate) max_head_bytes: usize,
    pub(crate) decompress: bool,
    pub(crate) connect_timeout: Option<Duration>,
}

/// What the server sent, carried past surf in the response's extensions: http-types
/// cannot hold a status such as 499 or 520, nor a header value that is not ASCII.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
}

/// What the transport needs of a request: where it goes, whether it is a HEAD (whose
/// reply has no body), and its bytes with the call's phase clock.
#[derive(Debug)]
struct ToSend {
    origin: Origin,
    head_request: bool,
    outgoing: Outgoing,
}

/// The `http_client::HttpClient` that surf sends through.
#[derive(Debug)]
pub(crate) struct Transport {
    pool: Pool,
    tls: Tls,
    settings: Settings,
    /// What each reply is cloned from: `Response::new` makes two channels (trailers,
    /// upgrades), each an aligned allocation (600 instructions apiece in callgrind); a
    /// clone shares them, and nothing here sends trailers or upgrades.
    blank_reply: Response,
}

impl Transport {
    pub(crate) fn new(settings: Settings, extra_roots: Vec<Certificate>) -> Self {
        Transport {
            pool: Pool::new(settings.idle_timeout, settings.max_idle_per_origin),
            tls: Tls::new(extra_roots),
            settings,
            blank_reply: Response::new(StatusCode::Ok),
        }
    }

    /// An idle connection to `origin` (`true`: reused), or a new one under the connect
    /// timeout.
    async fn connection(&self, origin: &Origin) -> Result<(Wire, bool), TransportError> {
        if let Some(conn) = self.pool.checkout(origin) {
            tracing::debug!("idle connection from the pool");
            return Ok((conn, true));
        }
        tracing::debug!("opening a new connection");
        // Boxed: opening (resolving, connecting, the TLS handshake) is the largest state
        // of an exchange, and inline it sized every exchange's future for it, pooled
        // connections' too: 3.9 KB per call in flight (heaptrack, 5,000 calls).
        let open = Box::pin(self.open(origin));
        let opened = match self.settings.connect_timeout {
            None => open.await,
            Some(limit) => async_std::future::timeout(limit, open)
                .await
                .unwrap_or_else(|_| {
                    let mut err =
                        TransportError::new(ErrorKind::Timeout, Phase::Connecting.timed_out(limit));
                    err.replay = Replay::NotSent;
                    Err(err)
                }),
        };
        Ok((Wire::new(opened?), false))
    }

    /// A new connection to `origin`, with the TLS handshake done for https.
    async fn open(&self, origin: &Origin) -> Result<Conn, TransportError> {
        let tcp = tcp::connect(&origin.host, origin.port).await?;
        tracing::debug!("connected");
        if !origin.tls {
            return Ok(Conn::Plain(tcp));
        }
        // rustls and OpenSSL check an IP address against the certificate only when it is
        // written bare: `[::1]`, as a URL writes it, would be taken for a host name.
        let domain = match &origin.host {
            Host::Domain(name) => name.clone(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        let tls = self.tls.handshake(&domain, tcp).await?;
        tracing::debug!("TLS handshake done");
        Ok(Conn::tls(tls))
    }

    /// What of surf's request is needed to send it. Taken out before the exchange's
    /// future is made, which would otherwise carry the 400-byte `Request` for the
    /// whole call.
    fn to_send(mut req: Request) -> Result<ToSend, TransportError> {
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
        let head_request = req.method() == Method::Head;
        let outgoing = req.ext_mut().remove::<Outgoing>().ok_or_else(|| {
            let mut err = TransportError::protocol(
                "the request came without its encoded form, which fanout's client gives \
                 every request",
            );
            err.replay = Replay::NotSent;
            err
        })?;
        Ok(ToSend {
            origin,
            head_request,
            outgoing,
        })
    }

    /// One request and its whole reply.
    async fn exchange(&self, to_send: ToSend) -> Result<RawReply, TransportError> {
        let ToSend {
            origin,
            head_request,
            outgoing:
                Outgoing {
                    progress,
                    bytes: encoded,
                },
        } = to_send;
        let (mut wire, reused) = self.connection(&origin).await?;
        progress.enter(Phase::Waiting);
        // On a reused connection, a failure before any byte of reply is the server
        // having closed it while idle: say so, for the retry policy.
        let stale = |mut err: TransportError| {
            if reused {
                err.replay = Replay::StaleConnection;
            }
            err
        };
        wire.send(&encoded)
            .await
            .map_err(|e| stale(TransportError::io("while the request was sent", e)))?;
        tracing::debug!(bytes = encoded.len(), "request sent");
        drop(encoded);
        wire.readable()
            .await
            .map_err(|e| stale(TransportError::io("while the reply was awaited", e)))?;
        let head = head::read(&mut wire, self.settings.max_head_bytes)
            .await
            .map_err(|e| if wire.received_nothing() { stale(e) } else { e })?;
        progress.enter(Phase::ReadingBody);
        let status = head.status;
        tracing::debug!(status, "reply head received");
        self.read_body(&origin, wire, head, head_request)
            .await
            .map_err(|e| e.at_status(status))
    }

    /// Reads the body that follows `head`, and gives the connection back to the pool
    /// when the reply ended where its framing said and the server keeps it open.
    async fn read_body(
        &self,
        origin: &Origin,
        mut wire: Wire,
        mut head: head::Head,
        head_request: bool,
    ) -> Result<RawReply, TransportError> {
        let framing = Framing::of(&head, head_request)?;
        let mut decoder = Decoder::for_coding(
            head.headers.get_bytes("content-encoding"),
            self.settings.decompress,
            LimitedBody::new(self.settings.body_limit, framing.announced()),
        )?;
        if decoder.is_identity() {
            // Compressed, a body may decode to more than it announced: its cap is the
            // decoder's to apply.
            LimitedBody::check_announced(self.settings.body_limit, framing.announced())?;
        }
        let ended_cleanly = body::read(&mut wire, framing, &mut decoder).await?;
        let decoded = !decoder.is_identity();
        let body = decoder.finish()?;
        tracing::debug!(bytes = body.len(), decoded, "body read");
        if decoded {
            // The body handed on is not the one these described.
            head.headers.remove("content-encoding");
            head.headers.remove("content-length");
        }
        if ended_cleanly && head.keeps_alive() {
            if let Some(idle) = wire.into_idle() {
                self.pool.checkin(origin, idle);
            }
        }
        Ok(RawReply {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

// Written out rather than with `#[async_trait]`, whose future would hold the request
// it is given for the whole call: what is needed of it is taken out first (`to_send`).
impl HttpClient for Transport {
    fn send<'transport, 'call>(
        &'transport self,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, HttpError>> + Send + 'call>>
    where
        'transport: 'call,
        Self: 'call,
    {
        let exchange = match Transport::to_send(req) {
            Ok(to_send) => Either::Left(self.exchange(to_send)),
            Err(err) => Either::Right(future::ready(Err(err))),
        };
        // A combinator, not an `async` block: the block would hold `exchange` twice
        // (captured, and again while awaited).
        Box::pin(exchange.map(|raw| {
            let raw = raw?;
            // http-types knows only the registered codes; the real one travels in
            // `RawReply`, and the client reads nothing else.
            let known = StatusCode::try_from(raw.status)
                .or_else(|_| StatusCode::try_from(raw.status / 100 * 100))
                .unwrap_or(StatusCode::InternalServerError);
            let mut res = self.blank_reply.clone();
            res.set_status(known);
            res.ext_mut().insert(raw);
            Ok(res)
        }))
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
