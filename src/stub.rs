//! The stub backend of the demo and the tests (feature `stub`): a tide app whose
//! `POST /api` sleeps `sleep_time` seconds without blocking a thread, then answers
//! `{"data": <the request body>, "status": "success"}` as the original Flask servers do.
//!
//! Two more fields of the request body shape its behaviour, for the retry and hedging
//! tests and the tail benchmark:
//! - `"tail": {"p": 0.01, "sleep_time": 1}`: with probability `p`, sleep the tail's
//!   `sleep_time` instead (a latency tail: 1% of calls take 1 s);
//! - `"fail_first": {"count": 2, "status": 503, "retry_after": 0.1, "key": "a"}`: the
//!   first `count` requests carrying this `key` (default `""`) get `status` (default
//!   503) with that `Retry-After` (omitted when absent) and a JSON error body; with
//!   `"close": true` instead, the connection is closed without a reply.
//!
//! It runs its own accept loop around the tide app rather than tide's listener, to turn
//! Nagle's algorithm off on every connection (40 ms stalls on reused connections
//! otherwise, measured) and to listen with a backlog sized for thousands of simultaneous
//! connects (the standard library's 128 makes the overflow wait out a 1 s SYN retry).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_std::io::ReadExt;
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures::channel::oneshot;
use futures::future::{self, Either, FutureExt, Shared};
use futures::io::{AsyncRead, AsyncWrite};
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 65_535;

/// The largest request body the stub reads; a larger one gets 413.
pub const MAX_REQUEST_BODY: u64 = 1024 * 1024;

/// The longest `sleep_time` the stub accepts, in seconds; a longer one gets 400.
pub const MAX_SLEEP_SECS: f64 = 3600.0;

/// A running stub server. Dropping it (or calling [`stop`](Stub::stop)) stops accepting
/// and closes every open connection.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let stub = fanout::stub::Stub::start_local()?;
/// assert!(stub.url().starts_with("http://127.0.0.1:"));
/// assert_eq!(stub.connections_accepted(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Stub {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    state: State,
    _stop: oneshot::Sender<()>,
}

/// What the app keeps between requests.
#[derive(Debug, Clone, Default)]
struct State {
    /// Requests to `/api`, counted as they arrive.
    requests: Arc<AtomicUsize>,
    /// Failures handed out so far, by `fail_first.key`.
    failed: Arc<Mutex<HashMap<String, u64>>>,
}

type StopSignal = Shared<oneshot::Receiver<()>>;

impl Stub {
    /// Starts a stub on a free loopback port.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let stub = fanout::stub::Stub::start_local()?;
    /// assert!(stub.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn start_local() -> io::Result<Stub> {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Starts a stub on `addr` (port 0 picks a free one). The server runs on async-std's
    /// global executor, so this works from any thread and any executor.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound (the port is taken, the address is not local).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::net::{Ipv4Addr, SocketAddr};
    ///
    /// let stub = fanout::stub::Stub::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    /// assert_ne!(stub.addr().port(), 0); // a free port was picked
    /// # Ok(()) }
    /// ```
    pub fn start(addr: SocketAddr) -> io::Result<Stub> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let state = State::default();
        let (stop_tx, stop_rx) = oneshot::channel();
        task::spawn(accept_loop(
            listener,
            app(state.clone()),
            accepted.clone(),
            stop_rx.shared(),
        ));
        Ok(Stub {
            addr,
            accepted,
            state,
            _stop: stop_tx,
        })
    }

    /// The address the stub listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let stub = fanout::stub::Stub::start_local()?;
    /// assert_eq!(stub.url(), format!("http://{}/api", stub.addr()));
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of its `POST /api` route.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoint = Endpoint::post("echo", stub.url()).json(json!({"sleep_time": 0, "n": 1}));
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// let body = outcome.reply().map(|r| r.body.clone());
    /// assert_eq!(body, Some(json!({"data": {"sleep_time": 0, "n": 1}, "status": "success"})));
    /// # Ok(()) }
    /// ```
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// How many TCP connections the stub has accepted so far.
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
    /// let endpoints = [
    ///     Endpoint::post("a", stub.url()).json(json!({})),
    ///     Endpoint::post("b", stub.url()).json(json!({})),
    /// ];
    /// for endpoint in &endpoints {
    ///     futures::executor::block_on(client.call(endpoint));
    /// }
    /// assert_eq!(stub.connections_accepted(), 1); // one after the other: the connection is reused
    /// # Ok(()) }
    /// ```
    pub fn connections_accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// How many requests reached `POST /api` so far (a request that was refused with
    /// 400 or 413 counts too).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    ///
    /// let stub = Stub::start_local()?;
    /// // Not JSON: refused with 400, and counted.
    /// let endpoint = Endpoint::post("text", stub.url()).text("hello");
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// assert_eq!(outcome.reply().map(|r| r.status), Some(400));
    /// assert_eq!(stub.requests_received(), 1);
    /// # Ok(()) }
    /// ```
    pub fn requests_received(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Stops the server, as dropping it does.
    /// The listener closes on the stub's own task, a moment after this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// let stub = fanout::stub::Stub::start_local()?;
    /// let addr = stub.addr();
    /// stub.stop();
    /// let refused = (0..100).any(|_| {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     TcpStream::connect(addr).is_err()
    /// });
    /// assert!(refused);
    /// # Ok(()) }
    /// ```
    pub fn stop(self) {}
}

/// A listener with a backlog for thousands of simultaneous connects.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Lets `--serve` restart at once on its fixed ports.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from(std::net::TcpListener::from(socket)))
}

/// Accepts until stopped, serving each connection in its own task.
async fn accept_loop(
    listener: TcpListener,
    app: tide::Server<State>,
    accepted: Arc<AtomicUsize>,
    stop: StopSignal,
) {
    loop {
        let stream = match future::select(Box::pin(listener.accept()), stop.clone()).await {
            Either::Left((Ok((stream, _)), _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted:
            // keep serving the others, after a pause that lets descriptors free up.
            Either::Left((Err(_), _)) => {
                task::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Either::Right(_) => return,
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        task::spawn(serve(stream, app.clone(), stop.clone()));
    }
}

/// Serves one connection's requests until it closes or the stub stops.
async fn serve(stream: TcpStream, app: tide::Server<State>, stop: StopSignal) {
    // A socket that refuses TCP_NODELAY is still served, only slower.
    let _ = stream.set_nodelay(true);
    let connection = async_h1::accept(BoundedConn::new(stream), move |req| {
        let app = app.clone();
        async move {
            let res: tide::http::Response = app.respond(req).await?;
            if res.ext().get::<CloseWithoutReply>().is_some() {
                // An error from the endpoint makes async-h1 drop the connection unanswered.
                return Err(tide::http::Error::from_str(
                    tide::http::StatusCode::InternalServerError,
                    "closing without a reply, as fail_first asked",
                ));
            }
            Ok(res)
        }
    });
    // The connection's end, whatever it was, concerns only its own client.
    let _ = future::select(Box::pin(connection), stop).await;
}

/// The most the stub reads for one request (counted from the last reply it wrote): the
/// body cap plus room for a head.
const MAX_REQUEST_READ: u64 = MAX_REQUEST_BODY + 64 * 1024;

/// How much the stub reads from one connection without a pause before it yields.
const YIELD_EVERY: u64 = 256 * 1024;

/// A connection as the stub's HTTP server reads it. async-h1's server reads a request
/// head until a line ends and drains an unread body to its announced end, holding or
/// spinning on whatever a client sends: here a request may take at most
/// [`MAX_REQUEST_READ`] bytes, and the reader yields every [`YIELD_EVERY`] bytes so one
/// fast client cannot hold an executor thread. Clones share the counts.
#[derive(Debug, Clone)]
struct BoundedConn {
    stream: TcpStream,
    counts: Arc<ReadCounts>,
}

#[derive(Debug, Default)]
struct ReadCounts {
    since_reply: AtomicU64,
    unyielded: AtomicU64,
}

impl BoundedConn {
    fn new(stream: TcpStream) -> Self {
        BoundedConn {
            stream,
            counts: Arc::default(),
        }
    }
}

impl AsyncRead for BoundedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let counts = self.counts.clone();
        if counts.since_reply.load(Ordering::Relaxed) >= MAX_REQUEST_READ {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request is larger than the stub reads",
            )));
        }
        if counts.unyielded.load(Ordering::Relaxed) >= YIELD_EVERY {
            counts.unyielded.store(0, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Poll::Ready(read) = Pin::new(&mut self.stream).poll_read(cx, buf) else {
            counts.unyielded.store(0, Ordering::Relaxed);
            return Poll::Pending;
        };
        let n = read? as u64;
        counts.since_reply.fetch_add(n, Ordering::Relaxed);
        counts.unyielded.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(n as usize))
    }
}

impl AsyncWrite for BoundedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.counts.since_reply.store(0, Ordering::Relaxed);
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// The tide app: `POST /api` only.
fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state);
    app.at("/api").post(api);
    app
}

/// `POST /api`: sleep `sleep_time` seconds, then echo the request as the Flask servers do.
async fn api(mut req: tide::Request<State>) -> tide::Result {
    req.state().requests.fetch_add(1, Ordering::SeqCst);
    let data = match read_json_object(&mut req).await {
        Ok(data) => data,
        Err((status, message)) => return Ok(error_reply(status, &message)),
    };
    if let Some(failure) = failure(req.state(), &data) {
        return Ok(failure);
    }
    let sleep = match sleep_time(&data) {
        Ok(sleep) => sleep,
        Err(message) => return Ok(error_reply(400, &message)),
    };
    task::sleep(sleep).await;
    let reply = json!({"data": data, "status": "success"});
    Ok(tide::Response::builder(200)
        .body(tide::Body::from_json(&reply)?)
        .build())
}

/// The request body as a JSON object, or the status and words to refuse it with.
async fn read_json_object(req: &mut tide::Request<State>) -> Result<Value, (u16, String)> {
    let too_large = || {
        (
            413,
            format!("the request body is over {MAX_REQUEST_BODY} bytes"),
        )
    };
    if req.len().is_some_and(|len| len as u64 > MAX_REQUEST_BODY) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    req.take_body()
        .take(MAX_REQUEST_BODY + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| (400, format!("the request body could not be read ({e})")))?;
    if bytes.len() as u64 > MAX_REQUEST_BODY {
        return Err(too_large());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err((400, "the request body must be a JSON object".to_owned())),
        Err(e) => Err((400, format!("the request body is not JSON ({e})"))),
    }
}

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
struct CloseWithoutReply;

/// The failure `fail_first` asks for, while its count is not used up.
fn failure(state: &State, data: &Value) -> Option<tide::Response> {
    let fail = data.get("fail_first")?;
    let count = fail.get("count").and_then(Value::as_u64).unwrap_or(1);
    let key = fail.get("key").and_then(Value::as_str).unwrap_or_default();
    {
        let mut failed = state
            .failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let so_far = failed.entry(key.to_owned()).or_default();
        if *so_far >= count {
            return None;
        }
        *so_far += 1;
    }
    let status = fail
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..600).contains(s))
        .unwrap_or(503);
    let mut res = error_reply(status, "failing as asked (fail_first)");
    if let Some(after) = fail.get("retry_after").and_then(Value::as_f64) {
        res.insert_header("Retry-After", after.to_string());
    }
    if fail.get("close").and_then(Value::as_bool) == Some(true) {
        res.insert_ext(CloseWithoutReply);
    }
    Some(res)
}

/// `sleep_time` in seconds, or the `tail`'s with its probability: absent is 0;
/// negative, non-numeric or huge is refused.
fn sleep_time(data: &Value) -> Result<Duration, String> {
    let tail = data.get("tail");
    let in_tail = tail
        .and_then(|t| t.get("p"))
        .and_then(Value::as_f64)
        .is_some_and(|p| fastrand::f64() < p);
    let source = if in_tail { tail } else { Some(data) };
    let Some(value) = source.and_then(|d| d.get("sleep_time")) else {
        return Ok(Duration::ZERO);
    };
    match value.as_f64() {
        Some(secs) if (0.0..=MAX_SLEEP_SECS).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "`sleep_time` must be a number of seconds from 0 to {MAX_SLEEP_SECS}, not {value}"
        )),
    }
}

/// A 4xx answer with a JSON body a client can read: `{"status": "error", "error": …}`.
fn error_reply(status: u16, message: &str) -> tide::Response {
    let body = json!({"status": "error", "error": message});
    let mut res = tide::Response::new(status);
    res.set_body(
        tide::Body::from_json(&body)
            .unwrap_or_else(|_| tide::Body::from_string(message.to_owned())),
    );
    res
}
