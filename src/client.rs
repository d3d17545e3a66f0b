//! The client: one surf client on our transport, and `gather`, which runs a batch of calls.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_lock::Semaphore;
use async_native_tls::Certificate;
use futures::future::join_all;
use futures::io::AsyncReadExt;
use surf::http::headers::CONTENT_TYPE;
use surf::http::{Body, Request};

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind};
use crate::report::{Outcome, Reply, Report};
use crate::transport::{BodyTooLarge, Progress, Transport, TransportError};

/// The largest response body read by default: 16 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// How long after its last use an idle connection may be reused, by default: 90 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Makes HTTP calls and gathers batches of them.
///
/// A `Client` owns one `surf::Client` and its pool of keep-alive connections; cloning is
/// cheap and shares both, so make one and reuse it across batches.
///
/// Redirects are not followed: a 3xx is a reply like any other status, so a redirect
/// loop costs one request, not a hang.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use fanout::{Client, Endpoint, stub::Stub};
/// use serde_json::json;
///
/// let stub = Stub::start_local()?;
/// let client = Client::new();
/// let endpoint = Endpoint::post("echo", stub.url()).json(json!({"sleep_time": 0}));
/// let outcome = futures::executor::block_on(client.call(&endpoint));
/// assert_eq!(outcome.reply().map(|r| r.status), Some(200));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    http: surf::Client,
    concurrency: Option<NonZeroUsize>,
    body_limit: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client with the defaults: every call of a batch at once, a 16 MiB body limit,
    /// idle connections reused for up to 90 s, the system's trusted roots.
    pub fn new() -> Self {
        ClientBuilder::new().build_with(Vec::new())
    }

    /// A builder for a client with other settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Calls every endpoint at once and waits for all of them.
    ///
    /// Each call runs under its endpoint's own timeout, which covers everything from
    /// waiting for a connection to reading the last byte of the body. A call that fails
    /// never cancels, aborts or delays the others.
    ///
    /// **Order:** the report holds exactly one outcome per endpoint, in the order given,
    /// whatever order the calls finish in. Duplicate names are kept, each with its own
    /// outcome.
    ///
    /// **Cancellation:** dropping the returned future cancels every call still in flight
    /// and closes their connections.
    ///
    /// **Cost:** one future per endpoint, polled by a single `join_all`, so no task is
    /// spawned and no runtime is required (a host name is resolved on async-std's
    /// blocking thread pool, which starts itself); one connection per call in flight (idle ones
    /// are reused); bodies are read into one buffer each, up to the body limit. With
    /// [`ClientBuilder::concurrency`] set, at most that many calls are in flight, and a
    /// call's timeout starts when it gets its turn, not while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, ErrorKind, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoints = [
    ///     Endpoint::post("second", stub.url()).json(json!({"sleep_time": 0.2})),
    ///     Endpoint::post("first", stub.url()).json(json!({"sleep_time": 0})),
    ///     Endpoint::post("broken", "http://127.0.0.1:99999/api"),
    /// ];
    /// let report = futures::executor::block_on(Client::new().gather(&endpoints));
    /// let names: Vec<_> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    /// assert_eq!(names, ["second", "first", "broken"]); // input order, not finishing order
    /// assert_eq!(report.outcomes[2].error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// # Ok(()) }
    /// ```
    pub async fn gather(&self, endpoints: &[Endpoint]) -> Report {
        let started = Instant::now();
        let turns = self.concurrency.map(|n| Semaphore::new(n.get()));
        let calls = endpoints.iter().map(|endpoint| {
            let turns = turns.as_ref();
            async move {
                let _turn = match turns {
                    Some(turns) => Some(turns.acquire().await),
                    None => None,
                };
                self.call(endpoint).await
            }
        });
        let outcomes = join_all(calls).await;
        Report {
            outcomes,
            elapsed: started.elapsed(),
        }
    }

    /// Makes one call under the endpoint's timeout.
    pub async fn call(&self, endpoint: &Endpoint) -> Outcome {
        let started = Instant::now();
        let result = match endpoint.problem() {
            Some(problem) => Err(Error::new(
                ErrorKind::InvalidEndpoint,
                endpoint.name(),
                problem,
            )),
            None => {
                let progress = Arc::new(Progress::default());
                let limit = endpoint.time_limit();
                match async_std::future::timeout(limit, self.exchange(endpoint, &progress)).await {
                    Ok(result) => result,
                    Err(_) => {
                        let phase = progress.phase();
                        let message = format!("timed out after {} {phase}", seconds(limit));
                        Err(Error::new(ErrorKind::Timeout, endpoint.name(), message))
                    }
                }
            }
        };
        Outcome {
            name: endpoint.name().to_owned(),
            result,
            elapsed: started.elapsed(),
        }
    }

    /// Sends the request and reads the reply; `progress` tells a timeout which phase it
    /// cut short.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        progress: &Arc<Progress>,
    ) -> Result<Reply, Error> {
        let name = endpoint.name();
        let mut req = request_for(endpoint)?;
        req.ext_mut().insert(progress.clone());
        let mut res = self.http.send(req).await.map_err(|e| classify(name, &e))?;
        progress.reading_body();
        let status = u16::from(res.status());

        // Sized from Content-Length so the body is read with no regrowing copies; never
        // over the body limit or 1 MiB up front, as the limit is checked on the first read.
        let capacity = res
            .header("content-length")
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .unwrap_or(0)
            .min(self.body_limit)
            .min(1 << 20);
        let mut bytes = Vec::with_capacity(capacity as usize);
        res.take_body()
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| classify_body_error(name, status, &e))?;

        if bytes.is_empty() {
            return Ok(Reply {
                status,
                body: serde_json::Value::Null,
            });
        }
        match serde_json::from_slice(&bytes) {
            Ok(body) => Ok(Reply { status, body }),
            Err(e) => Err(Error::new(
                ErrorKind::Decode,
                name,
                format!("the body is not JSON ({e})"),
            )
            .with_status(status)
            .with_body_prefix(&bytes)),
        }
    }
}

/// The surf request for an endpoint that has no problem.
fn request_for(endpoint: &Endpoint) -> Result<Request, Error> {
    let url = endpoint.url().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidEndpoint,
            endpoint.name(),
            "the endpoint has no valid url",
        )
    })?;
    let mut req = Request::new(endpoint.method(), url);
    if let Some(data) = endpoint.data() {
        let bytes = serde_json::to_vec(data).map_err(|e| {
            Error::new(
                ErrorKind::InvalidEndpoint,
                endpoint.name(),
                format!("the body cannot be encoded ({e})"),
            )
        })?;
        req.set_body(Body::from_bytes(bytes));
        // After the body, which would otherwise set `application/octet-stream`.
        req.insert_header(CONTENT_TYPE, endpoint.media_type());
    }
    for (name, value) in endpoint.headers() {
        // Names and values were checked when the endpoint was built, so these cannot fail.
        req.append_header(name.as_str(), value.as_str());
    }
    Ok(req)
}

/// Turns a surf error into our kinds: the transport's own errors carry their kind.
fn classify(name: &str, err: &surf::Error) -> Error {
    match err.downcast_ref::<TransportError>() {
        Some(t) => Error::new(t.kind, name, t.message.clone()),
        None => Error::new(
            ErrorKind::Protocol,
            name,
            format!("the request failed ({err})"),
        ),
    }
}

/// Turns a failed body read into our kinds: the cap's own error, or a broken body.
fn classify_body_error(name: &str, status: u16, err: &std::io::Error) -> Error {
    let (kind, message) = match err.get_ref().and_then(|e| e.downcast_ref::<BodyTooLarge>()) {
        Some(too_large) => (ErrorKind::BodyTooLarge, too_large.to_string()),
        None => (
            ErrorKind::Protocol,
            match err.kind() {
                std::io::ErrorKind::UnexpectedEof => format!("the body was cut off ({err})"),
                std::io::ErrorKind::ConnectionReset => {
                    "the server reset the connection during the body".to_owned()
                }
                // Only async-h1's chunked decoder fails a body read with InvalidData (a
                // Content-Length body is a plain `take` of the socket, TLS errors are
                // `Other`); "could not be read" would hide that the server's framing is bad.
                std::io::ErrorKind::InvalidData => {
                    format!("the chunked body is malformed ({err})")
                }
                _ => format!("the body could not be read ({err})"),
            },
        ),
    };
    Error::new(kind, name, message).with_status(status)
}

/// `2 s`, `0.25 s`: a duration as a person writes it.
fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}

/// Settings for a [`Client`].
///
/// # Examples
///
/// ```
/// let client = fanout::Client::builder()
///     .concurrency(100)
///     .body_limit(1024 * 1024)
///     .build();
/// assert!(client.is_ok());
///
/// let refused = fanout::Client::builder().add_root_certificate(&b"not PEM"[..]).build();
/// assert!(refused.unwrap_err().to_string().starts_with("root certificate #1"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    concurrency: Option<usize>,
    body_limit: u64,
    idle_timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// The defaults of [`Client::new`].
    pub fn new() -> Self {
        ClientBuilder {
            concurrency: None,
            body_limit: DEFAULT_BODY_LIMIT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            root_certificates: Vec::new(),
        }
    }

    /// At most `limit` calls of a batch in flight at once (default: all of them). Results
    /// keep input order; a call's timeout starts when its turn comes. 0 is refused by
    /// [`build`](Self::build).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// The largest response body read, in bytes (default 16 MiB). A larger body ends in
    /// `body_too_large` without more than this ever being held in memory.
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long after its last use an idle keep-alive connection may still be reused
    /// (default 90 s); older ones are closed when next come across. Zero turns reuse off.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Trusts this PEM-encoded certificate as a root, beside the system's roots: for
    /// `https://` backends with a private CA or a self-signed certificate.
    pub fn add_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] when the concurrency is 0 or a root certificate is not valid PEM.
    pub fn build(self) -> Result<Client, BuildError> {
        if self.concurrency == Some(0) {
            return Err(BuildError("concurrency must be at least 1".to_owned()));
        }
        let roots = self
            .root_certificates
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                Certificate::from_pem(pem).map_err(|e| {
                    BuildError(format!(
                        "root certificate #{} is not valid PEM ({e})",
                        i + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.build_with(roots))
    }

    /// The client, once the fallible parts (the certificates) are checked.
    fn build_with(self, roots: Vec<Certificate>) -> Client {
        let transport = Transport::new(self.body_limit, self.idle_timeout, roots);
        Client {
            http: surf::Client::with_http_client(transport),
            concurrency: self.concurrency.and_then(NonZeroUsize::new),
            body_limit: self.body_limit,
        }
    }
}

/// Why a [`ClientBuilder`] could not build a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::seconds;
    use std::time::Duration;

    #[test]
    fn seconds_are_written_without_trailing_zeros() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
