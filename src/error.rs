//! The error of one call, and the stable names of its kinds.

use std::fmt;

use crate::transport::Replay;

/// Why a call ended without a reply. [`ErrorKind::as_str`] gives the stable,
/// machine-readable name of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The endpoint cannot become a request (URL, protocol, port, method or header is
    /// wrong); found before anything is sent.
    InvalidEndpoint,
    /// No connection could be made: refused, the host name did not resolve, or the TLS
    /// handshake failed (an untrusted certificate among them).
    Connect,
    /// The call did not finish within its endpoint's timeout.
    Timeout,
    /// The reply is not well-formed HTTP/1.x, or the connection was reset or cut off
    /// before the reply was whole.
    Protocol,
    /// The reply arrived whole but its body could not be read as asked: not JSON, or
    /// compressed in a way that does not decompress.
    Decode,
    /// The reply's body is larger than the client's body limit (counted decompressed).
    BodyTooLarge,
    /// Redirects could not be followed to a final reply: more hops than allowed, a
    /// loop, or a `Location` that is not an http(s) URL.
    Redirect,
    /// The call was stopped by its batch, not by its own fault: another endpoint failed
    /// first in a fail-fast batch, or the batch deadline passed before it started.
    Cancelled,
}

impl ErrorKind {
    /// The stable name of this kind: `invalid_endpoint`, `connect`, `timeout`,
    /// `protocol`, `decode`, `body_too_large`, `redirect` or `cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(fanout::ErrorKind::BodyTooLarge.as_str(), "body_too_large");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidEndpoint => "invalid_endpoint",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Decode => "decode",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one endpoint's call failed. It displays as `<endpoint>: <what happened> (<detail>)`,
/// the detail where there is one, e.g. `tmp_3: timed out after 2 s while reading the
/// response body` or `down: could not connect to 10.0.0.5:80 (Network is unreachable)`.
///
/// The details live behind one box so that an `Outcome` stays cheap to move.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    endpoint: String,
    message: String,
    status: Option<u16>,
    body_prefix: Option<String>,
    body: Option<Vec<u8>>,
    /// Whether the request may be sent again (decided by the transport).
    replay: Replay,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// How much of a body that is not JSON an error keeps, so the caller can see what came back.
const BODY_PREFIX_BYTES: usize = 200;

impl Error {
    pub(crate) fn new(kind: ErrorKind, endpoint: &str, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                endpoint: endpoint.to_owned(),
                message: message.into(),
                status: None,
                body_prefix: None,
                body: None,
                replay: Replay::Unknown,
                source: None,
            }),
        }
    }

    pub(crate) fn with_replay(mut self, replay: Replay) -> Self {
        self.inner.replay = replay;
        self
    }

    pub(crate) fn replay(&self) -> Replay {
        self.inner.replay
    }

    /// Puts the causes of earlier attempts in front of the message: `after 3 attempts:
    /// connection refused by …; connection refused by …; timed out after 0.2 s …`.
    pub(crate) fn after_attempts(mut self, earlier: &[String]) -> Self {
        if !earlier.is_empty() {
            let message = &self.inner.message;
            self.inner.message = format!(
                "after {} attempts: {}; {message}",
                earlier.len() + 1,
                earlier.join("; ")
            );
        }
        self
    }

    /// Keeps `cause` as the error's [`source`](std::error::Error::source).
    pub(crate) fn with_source(
        mut self,
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.inner.source = cause;
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Keeps the body that could not be read as asked, and its first 200 bytes as text
    /// (cut back to a character boundary) for messages and JSON.
    pub(crate) fn with_body(mut self, body: Vec<u8>) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(BODY_PREFIX_BYTES)]);
        let mut end = text.len().min(BODY_PREFIX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.inner.body_prefix = Some(text[..end].to_owned());
        self.inner.body = Some(body);
        self
    }

    /// What kind of failure this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::post("x", "gopher://a/")));
    /// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The name of the endpoint whose call failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::post("x", "gopher://a/")));
    /// assert_eq!(outcome.error().map(|e| e.endpoint()), Some("x"));
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// What happened, without the endpoint's name in front.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::post("x", "gopher://a/")));
    /// let err = outcome.error().expect("an invalid endpoint");
    /// assert_eq!(err.message(), "unsupported protocol `gopher` in `gopher://a/` (expected http or https)");
    /// assert_eq!(err.to_string(), format!("x: {}", err.message()));
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The HTTP status, when a reply head arrived before the failure (`decode`,
    /// `body_too_large`, or a body cut off).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    ///
    /// // A server that answers 502 with HTML where JSON was expected.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", listener.local_addr()?);
    /// std::thread::spawn(move || {
    ///     let (mut stream, _) = listener.accept().unwrap();
    ///     let _ = stream.read(&mut [0u8; 1024]);
    ///     let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 5\r\n\r\noops!");
    /// });
    /// let outcome = futures::executor::block_on(
    ///     fanout::Client::new().call(&fanout::Endpoint::get("api", url)),
    /// );
    /// let err = outcome.error().expect("not JSON");
    /// assert_eq!((err.kind(), err.status()), (fanout::ErrorKind::Decode, Some(502)));
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// For `decode`: the first 200 bytes of the body that was not JSON, lossily as UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    ///
    /// // A server that answers with a page of HTML where JSON was expected.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", listener.local_addr()?);
    /// std::thread::spawn(move || {
    ///     let (mut stream, _) = listener.accept().unwrap();
    ///     let _ = stream.read(&mut [0u8; 1024]);
    ///     let page = format!("<html>{}</html>", "x".repeat(1000));
    ///     let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", page.len());
    ///     let _ = stream.write_all((head + &page).as_bytes());
    /// });
    /// let outcome = futures::executor::block_on(
    ///     fanout::Client::new().call(&fanout::Endpoint::get("page", url)),
    /// );
    /// let prefix = outcome.error().and_then(|e| e.body_prefix()).expect("not JSON");
    /// assert!(prefix.starts_with("<html>xxx") && prefix.len() == 200);
    /// # Ok(()) }
    /// ```
    pub fn body_prefix(&self) -> Option<&str> {
        self.inner.body_prefix.as_deref()
    }

    /// For `decode`: the whole body that was not JSON, as the server sent it
    /// (decompressed), up to the body limit.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    ///
    /// // A server that answers with HTML where JSON was expected.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", listener.local_addr()?);
    /// std::thread::spawn(move || {
    ///     let (mut stream, _) = listener.accept().unwrap();
    ///     let _ = stream.read(&mut [0u8; 1024]);
    ///     let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n<html></html>");
    /// });
    /// let outcome = futures::executor::block_on(
    ///     fanout::Client::new().call(&fanout::Endpoint::get("page", url)),
    /// );
    /// let err = outcome.error().expect("not JSON");
    /// assert_eq!(err.body(), Some(&b"<html></html>"[..]));
    /// # Ok(()) }
    /// ```
    pub fn body(&self) -> Option<&[u8]> {
        self.inner.body.as_deref()
    }

    /// Whether the call ran out of time.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    ///
    /// // A server that takes the connection (the kernel does) but never answers.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", silent.local_addr()?);
    /// let endpoint = fanout::Endpoint::get("slow", url).timeout(Duration::from_millis(200));
    /// let outcome = futures::executor::block_on(fanout::Client::new().call(&endpoint));
    /// let err = outcome.error().expect("no reply");
    /// assert!(err.is_timeout());
    /// assert_eq!(err.message(), "timed out after 0.2 s waiting for the response");
    /// # Ok(()) }
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Whether no connection could be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// // Nothing listens on port 1.
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::get("down", "http://127.0.0.1:1/")));
    /// assert!(outcome.error().is_some_and(|e| e.is_connect()));
    /// ```
    pub fn is_connect(&self) -> bool {
        self.inner.kind == ErrorKind::Connect
    }

    /// Whether the batch stopped the call (fail-fast, or its deadline before it started).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::new();
    /// // A deadline that has passed before any call starts.
    /// let batch = client.batch().deadline(Duration::ZERO);
    /// let report = futures::executor::block_on(batch.gather(&[Endpoint::get("late", "http://127.0.0.1:1/")]));
    /// assert!(report.outcomes[0].error().is_some_and(|e| e.is_cancelled()));
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.kind == ErrorKind::Cancelled
    }

    /// Whether redirects could not be followed to a final reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    ///
    /// // A server that redirects to an FTP URL, which cannot be followed.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", listener.local_addr()?);
    /// std::thread::spawn(move || {
    ///     let (mut stream, _) = listener.accept().unwrap();
    ///     let _ = stream.read(&mut [0u8; 1024]);
    ///     let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nlocation: ftp://files/a\r\ncontent-length: 0\r\n\r\n");
    /// });
    /// let outcome = futures::executor::block_on(
    ///     fanout::Client::new().call(&fanout::Endpoint::get("moved", url)),
    /// );
    /// assert!(outcome.error().is_some_and(|e| e.is_redirect()));
    /// # Ok(()) }
    /// ```
    pub fn is_redirect(&self) -> bool {
        self.inner.kind == ErrorKind::Redirect
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.endpoint, self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("endpoint", &self.inner.endpoint)
            .field("message", &self.inner.message)
            .field("status", &self.inner.status)
            .field("body_prefix", &self.inner.body_prefix)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_names_the_endpoint_first() {
        let err = Error::new(ErrorKind::Timeout, "tmp_3", "timed out after 2 s");
        assert_eq!(err.to_string(), "tmp_3: timed out after 2 s");
    }

    #[test]
    fn body_prefix_is_cut_at_a_character_boundary() {
        let body = "é".repeat(150); // 300 bytes, two per character
        let err =
            Error::new(ErrorKind::Decode, "e", "not json").with_body(body.clone().into_bytes());
        assert_eq!(err.body_prefix().map(str::len), Some(200));
        let odd = format!("a{}", "é".repeat(150));
        let err =
            Error::new(ErrorKind::Decode, "e", "not json").with_body(odd.clone().into_bytes());
        let prefix = err.body_prefix().unwrap_or_default();
        assert!(prefix.len() <= 200 && prefix.starts_with('a'), "{prefix:?}");
    }
}
