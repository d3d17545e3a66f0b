//! Helpers shared by the tests: stub servers, a raw TCP server for replies tide would
//! never send, and a closed port.
#![allow(dead_code)] // each test file uses its own part of these

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures::channel::oneshot;
use futures::future::{self, Either, FutureExt};

pub use fanout::stub::Stub;

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

/// A loopback URL on which nothing listens: the port was bound, then released.
pub fn closed_port_url() -> String {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    drop(listener);
    format!("http://{addr}/api")
}

/// Starts a stub on a free loopback port.
pub fn stub() -> Stub {
    Stub::start_local().expect("start a stub on loopback")
}
