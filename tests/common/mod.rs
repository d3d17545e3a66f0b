//! Helpers shared by the tests: stub servers, a raw TCP server for replies tide would
//! never send, a closed port, and the calls and checks that several test files make.
#![allow(dead_code)] // each test file uses its own part of these

use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::prelude::*;
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use fanout::{Client, Endpoint, Error, ErrorKind, Outcome, Reply};
use flate2::write::GzEncoder;
use flate2::Compression;
use futures::channel::oneshot;
use futures::future::{self, Either, FutureExt};
use serde_json::json;

pub use fanout::stub::Stub;

/// How long past its timeout (or, for a call that must end on its own, at all) a call
/// may take: wide, because this runs on a shared 2-core machine beside other builds and
/// the other tests of the same file. The files that bound their waits more tightly
/// (retries, hedging, batches) keep a narrower margin of their own.
pub const MARGIN: Duration = Duration::from_secs(3);

/// The timeout of a call that must end on its own, long before any timeout: wide, since
/// this runs on a shared 2-core machine beside other builds; none of these calls should
/// come near it.
pub const PATIENT: Duration = Duration::from_secs(20);

/// A 200 reply with the JSON body `{}`, for raw servers that answer every request alike.
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

/// How long any one raw connection may live, so a test server never outlives its test.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// A local TCP server whose every connection is handled by a test's own function.
pub struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl RawServer {
    /// Serves each accepted connection with `handler`, on a free loopback port.
    pub fn start<F, Fut>(handler: F) -> RawServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        RawServer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), handler)
    }

    /// Serves each accepted connection with `handler`, on `addr`.
    pub fn start_on<F, Fut>(addr: SocketAddr, handler: F) -> RawServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = task::block_on(TcpListener::bind(addr)).expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let counter = accepted.clone();
        let stop = stop_rx.shared();
        task::spawn(async move {
            loop {
                match future::select(Box::pin(listener.accept()), stop.clone()).await {
                    Either::Left((Ok((stream, _)), _)) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_nodelay(true);
                        let conn = handler(stream);
                        let stop = stop.clone();
                        task::spawn(async move {
                            let bounded = async_std::future::timeout(CONNECTION_LIFETIME, conn);
                            let _ = future::select(Box::pin(bounded), stop).await;
                        });
                    }
                    Either::Left((Err(_), _)) => task::sleep(Duration::from_millis(5)).await,
                    Either::Right(_) => return,
                }
            }
        });
        RawServer {
            addr,
            accepted,
            _stop: stop_tx,
        }
    }

    /// A server that answers every request on a connection with the same raw bytes,
    /// keeping the connection open for more.
    pub fn answering(response: &'static [u8]) -> RawServer {
        RawServer::start(move |mut stream| async move {
            while read_request(&mut stream).await.is_some() {
                if stream.write_all(response).await.is_err() {
                    return;
                }
            }
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn connections_accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP request (head and Content-Length body); `None` when the peer closed.
pub async fn read_request<S: Read + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => request.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

/// An HTTP/1.1 response with a Content-Length body.
pub fn http_response(status_line: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Holds a request read from `stream` for `hold`, unless the client hangs up first, and
/// says whether it did: a server that notices a client giving up on a held request (a
/// hedge's loser, a cancelled call) instead of answering it late. Any byte the client
/// sends meanwhile counts as hanging up too; these tests' clients send none while they
/// wait.
pub async fn hung_up_within(stream: &TcpStream, hold: Duration) -> bool {
    let mut probe = stream.clone();
    let mut byte = [0u8; 1];
    let held = future::select(Box::pin(task::sleep(hold)), Box::pin(probe.read(&mut byte))).await;
    matches!(held, Either::Right(_))
}

/// A loopback port that was free a moment ago: it was bound, then released.
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// A loopback URL on which nothing listens: the port was bound, then released.
pub fn closed_port_url() -> String {
    format!("http://{}:{}/api", Ipv4Addr::LOCALHOST, free_port())
}

/// Starts a stub on a free loopback port.
pub fn stub() -> Stub {
    Stub::start_local().expect("start a stub on loopback")
}

/// Calls `endpoint` alone and waits for its outcome.
pub fn call(client: &Client, endpoint: &Endpoint) -> Outcome {
    task::block_on(client.call(endpoint))
}

/// The status of `outcome`'s reply; `None` when it failed.
pub fn status(outcome: &Outcome) -> Option<u16> {
    outcome.reply().map(|r| r.status)
}

/// A POST to a stub at `url` that answers after `seconds`.
pub fn sleeper(name: &str, url: &str, seconds: f64) -> Endpoint {
    Endpoint::post(name, url).json(json!({ "sleep_time": seconds }))
}

/// Polls `done` until it holds or `limit` passes; the server's counters move on its own
/// tasks, a moment after the client has its answer.
pub fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Gathers `endpoint` in one batch with a healthy call to a stub; checks that the healthy
/// call kept its 200 reply, whatever became of the other, and returns `endpoint`'s
/// outcome.
pub fn beside_a_healthy_call(client: &Client, endpoint: Endpoint) -> Outcome {
    let stub = stub();
    let healthy = Endpoint::post("healthy", stub.url()).json(json!({"sleep_time": 0}));
    let report = task::block_on(client.gather(&[endpoint, healthy]));
    let mut outcomes = report.outcomes.into_iter();
    let (Some(outcome), Some(healthy), None) = (outcomes.next(), outcomes.next(), outcomes.next())
    else {
        panic!("a batch of two gave another number of outcomes");
    };
    assert_eq!(healthy.name, "healthy");
    assert_eq!(
        healthy.reply().map(|r| r.status),
        Some(200),
        "the healthy call paid for the other one: {healthy:?}"
    );
    outcome
}

/// Checks that `outcome` failed with `kind` within `within`, with a message that names
/// its endpoint and says `words`.
pub fn assert_failed<'a>(
    outcome: &'a Outcome,
    kind: ErrorKind,
    words: &str,
    within: Duration,
) -> &'a Error {
    let err = outcome
        .error()
        .unwrap_or_else(|| panic!("expected a {kind} error, got {outcome:?}"));
    let message = err.to_string();
    assert_eq!(err.kind(), kind, "{message}");
    assert!(
        message.starts_with(&format!("{}: ", outcome.name)),
        "the message does not name the endpoint: {message}"
    );
    assert!(
        message.contains(words),
        "the message does not say {words:?}: {message}"
    );
    assert!(
        outcome.elapsed < within,
        "{} took {:?}, more than {within:?}",
        outcome.name,
        outcome.elapsed
    );
    err
}

/// Checks that `outcome` ran into its timeout `limit` (not sooner, nor much later)
/// while `phase`.
pub fn assert_timed_out(outcome: &Outcome, limit: Duration, phase: &str) {
    let words = format!("timed out after {} s {phase}", limit.as_secs_f64());
    assert_failed(outcome, ErrorKind::Timeout, &words, limit + MARGIN);
    assert!(outcome.elapsed >= limit, "{:?}", outcome.elapsed);
}

/// Checks that `outcome` is a reply, in good time, and returns it.
pub fn assert_replied(outcome: &Outcome) -> &Reply {
    let reply = outcome
        .reply()
        .unwrap_or_else(|| panic!("expected a reply, got {outcome:?}"));
    assert!(outcome.elapsed < MARGIN, "{:?}", outcome.elapsed);
    reply
}

/// `bytes` gzipped, as a server sends a gzip-coded body.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}
