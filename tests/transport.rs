//! The transport: keep-alive reuse, and when a connection must not be reused.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_std::io::prelude::*;
use common::{read_request, stub, RawServer};
use fanout::{Client, Endpoint, ErrorKind, Outcome};
use serde_json::json;

fn call(client: &Client, endpoint: &Endpoint) -> Outcome {
    async_std::task::block_on(client.call(endpoint))
}

/// Calls a fresh stub `times` times in a row with `client`, checking each reply, and
/// says how many connections the stub accepted.
fn connections_for_calls_in_a_row(client: &Client, times: usize) -> usize {
    let server = stub();
    let endpoint = Endpoint::post("again", server.url()).json(json!({"sleep_time": 0}));
    for _ in 0..times {
        assert_eq!(call(client, &endpoint).reply().map(|r| r.status), Some(200));
    }
    server.connections_accepted()
}

#[test]
fn sequential_calls_to_one_stub_reuse_one_connection() {
    assert_eq!(connections_for_calls_in_a_row(&Client::new(), 5), 1);
}

#[test]
fn clones_of_a_client_share_its_connections() {
    let server = stub();
    let client = Client::new();
    let endpoint = Endpoint::post("shared", server.url()).json(json!({"sleep_time": 0}));
    assert_eq!(
        call(&client, &endpoint).reply().map(|r| r.status),
        Some(200)
    );
    assert_eq!(
        call(&client.clone(), &endpoint).reply().map(|r| r.status),
        Some(200)
    );
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn chunked_replies_are_read_whole_and_their_connection_reused() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
    );
    let client = Client::new();
    let endpoint = Endpoint::get("chunked", server.url("/"));
    for _ in 0..3 {
        assert_eq!(
            call(&client, &endpoint).reply().map(|r| r.body.clone()),
            Some(json!({"a": 1}))
        );
    }
    assert_eq!(server.connections_accepted(), 1);
}

/// A server whose first connection sends half of a 100-byte body and stalls; later
/// connections answer properly.
fn half_body_first() -> RawServer {
    let connections = Arc::new(AtomicUsize::new(0));
    RawServer::start(move |mut stream| {
        let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            while read_request(&mut stream).await.is_some() {
                let reply: &[u8] = if first {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"half\":"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"ok\":1}"
                };
                if stream.write_all(reply).await.is_err() {
                    return;
                }
                if first {
                    async_std::task::sleep(Duration::from_secs(20)).await;
                }
            }
        }
    })
}

#[test]
fn a_connection_whose_body_was_dropped_half_read_is_not_reused() {
    let server = half_body_first();
    let client = Client::new();
    let endpoint = Endpoint::get("half", server.url("/")).timeout(Duration::from_millis(300));
    let first = call(&client, &endpoint);
    let err = first.error().expect("the body never ends");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        err.message(),
        "timed out after 0.3 s while reading the response body"
    );
    let second = call(&client, &endpoint);
    assert_eq!(
        second.reply().map(|r| r.body.clone()),
        Some(json!({"ok": 1}))
    );
    assert_eq!(server.connections_accepted(), 2);
}

#[test]
fn a_connection_whose_body_passed_the_limit_is_not_reused() {
    let server =
        RawServer::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"long\":\"body\"}");
    let client = Client::builder()
        .body_limit(8)
        .build()
        .expect("a valid client");
    let endpoint = Endpoint::get("big", server.url("/"));
    for _ in 0..2 {
        let outcome = call(&client, &endpoint);
        let err = outcome.error().expect("over the limit");
        assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
        assert_eq!(err.status(), Some(200));
    }
    assert_eq!(server.connections_accepted(), 2);
}

#[test]
fn an_idle_connection_the_server_closed_does_not_fail_the_next_call() {
    // Answers one request per connection with a keep-alive reply, then closes it, and
    // says so, so the test knows the pooled connection is dead before calling again.
    let (closed, closes) = mpsc::channel::<()>();
    let server = RawServer::start(move |mut stream| {
        let closed = closed.clone();
        async move {
            if read_request(&mut stream).await.is_some() {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
            }
            drop(stream);
            let _ = closed.send(());
        }
    });
    let client = Client::new();
    let endpoint = Endpoint::get("flaky", server.url("/"));
    for _ in 0..3 {
        let outcome = call(&client, &endpoint);
        assert_eq!(outcome.reply().map(|r| r.status), Some(200), "{outcome:?}");
        closes
            .recv_timeout(Duration::from_secs(5))
            .expect("the server closed the connection");
    }
    assert_eq!(server.connections_accepted(), 3);
}

#[test]
fn a_reply_saying_connection_close_is_not_reused() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    );
    let client = Client::new();
    let endpoint = Endpoint::get("closing", server.url("/"));
    for _ in 0..2 {
        assert_eq!(
            call(&client, &endpoint).reply().map(|r| r.status),
            Some(200)
        );
    }
    assert_eq!(server.connections_accepted(), 2);
}

#[test]
fn with_a_zero_idle_timeout_no_connection_is_reused() {
    let client = Client::builder()
        .idle_timeout(Duration::ZERO)
        .build()
        .expect("a valid client");
    assert_eq!(connections_for_calls_in_a_row(&client, 2), 2);
}

#[test]
fn headers_and_content_type_are_sent_as_given() {
    let (requests, received) = mpsc::channel::<String>();
    let server = RawServer::start(move |mut stream| {
        let requests = requests.clone();
        async move {
            if let Some(request) = read_request(&mut stream).await {
                let _ = requests.send(String::from_utf8_lossy(&request).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
            }
        }
    });
    let endpoint = Endpoint::post("headers", server.url("/api"))
        .json(json!({"k": "v"}))
        .content_type("application/vnd.test+json")
        .header("x-trace", "abc");
    assert!(call(&Client::new(), &endpoint).reply().is_some());
    let request = received
        .recv_timeout(Duration::from_secs(5))
        .expect("a request")
        .to_ascii_lowercase();
    assert!(request.starts_with("post /api http/1.1\r\n"), "{request}");
    assert!(
        request.contains("\r\ncontent-type: application/vnd.test+json\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\nx-trace: abc\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\n{\"k\":\"v\"}"), "{request}");
}

#[test]
fn a_connection_idle_past_the_idle_timeout_is_not_reused() {
    let server = stub();
    let client = Client::builder()
        .idle_timeout(Duration::from_millis(100))
        .build()
        .expect("a valid client");
    let endpoint = Endpoint::post("later", server.url()).json(json!({"sleep_time": 0}));
    assert_eq!(
        call(&client, &endpoint).reply().map(|r| r.status),
        Some(200)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        call(&client, &endpoint).reply().map(|r| r.status),
        Some(200)
    );
    assert_eq!(server.connections_accepted(), 2);
}
