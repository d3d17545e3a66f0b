//! The stub is a server: loopback by default, bounded input, clear 4xx answers, and it
//! survives a flood of connections.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::net::TcpStream;
use common::stub;
use fanout::{Client, Endpoint};
use serde_json::{json, Value};

/// Sends one POST /api with `body` on a fresh connection; the status and the body as JSON.
fn raw_post(addr: SocketAddr, body: &[u8]) -> (u16, Value) {
    async_std::task::block_on(async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the stub");
        let head = format!(
            "POST /api HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the head");
        // A server that refuses the body early may close before it is all sent.
        let _ = stream.write_all(body).await;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        let text = String::from_utf8_lossy(&reply);
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    })
}

#[test]
fn a_local_stub_listens_on_loopback_only() {
    let server = stub();
    assert!(server.addr().ip().is_loopback(), "{}", server.addr());
}

#[test]
fn it_echoes_the_request_as_the_original_flask_servers_do() {
    let server = stub();
    let (status, body) = raw_post(server.addr(), br#"{"sleep_time": 0, "x": [1, 2]}"#);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"sleep_time": 0, "x": [1, 2]}, "status": "success"})
    );
}

#[test]
fn it_sleeps_for_fractional_seconds_without_blocking_other_requests() {
    let server = stub();
    let endpoints: Vec<_> = (0..20)
        .map(|i| Endpoint::post(format!("e{i}"), server.url()).json(json!({"sleep_time": 0.3})))
        .collect();
    let report = async_std::task::block_on(Client::new().gather(&endpoints));
    assert!(report.all_replied());
    assert!(
        report.elapsed >= Duration::from_millis(300),
        "{:?}",
        report.elapsed
    );
    // Twenty sleeps blocking async-std's two worker threads here would take 3 s.
    assert!(
        report.elapsed < Duration::from_secs(2),
        "{:?}",
        report.elapsed
    );
}

#[test]
fn a_body_that_is_not_json_gets_400_with_a_json_error() {
    let server = stub();
    let (status, body) = raw_post(server.addr(), b"sleep_time=1");
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the request body is not JSON")),
        "{body}"
    );
}

#[test]
fn a_body_that_is_not_an_object_gets_400() {
    let server = stub();
    let (status, body) = raw_post(server.addr(), b"[1, 2]");
    assert_eq!(status, 400);
    assert_eq!(body["error"], "the request body must be a JSON object");
}

#[test]
fn an_out_of_bounds_sleep_time_gets_400() {
    let server = stub();
    for bad in [json!(-1), json!(1e9), json!("1"), json!(null)] {
        let (status, body) = raw_post(
            server.addr(),
            json!({"sleep_time": bad}).to_string().as_bytes(),
        );
        assert_eq!(status, 400, "sleep_time {bad}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("`sleep_time`")),
            "{body}"
        );
    }
}

#[test]
fn a_body_over_one_mib_gets_413() {
    let server = stub();
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let (status, body) = raw_post(server.addr(), big.as_bytes());
    assert_eq!(status, 413);
    assert_eq!(body["status"], "error");
}

#[test]
fn a_flood_of_connections_does_not_take_it_down() {
    let server = stub();
    let addr = server.addr();
    // 1,000 connections opened at once and left idle or half-written, then dropped.
    async_std::task::block_on(async {
        let mut flood = Vec::new();
        for i in 0..1000 {
            if let Ok(mut stream) = TcpStream::connect(addr).await {
                if i % 2 == 0 {
                    let _ = stream.write_all(b"POST /api HTTP/1.1\r\ncontent-le").await;
                }
                flood.push(stream);
            }
        }
        assert!(
            flood.len() >= 900,
            "only {} connections were accepted",
            flood.len()
        );
        let endpoint = Endpoint::post("after", server.url()).json(json!({"sleep_time": 0}));
        let outcome = Client::new().call(&endpoint).await;
        assert_eq!(outcome.reply().map(|r| r.status), Some(200), "{outcome:?}");
    });
    let (status, _) = raw_post(addr, b"{}");
    assert_eq!(status, 200);
}

#[test]
fn dropping_the_stub_stops_it() {
    let server = stub();
    let addr = server.addr();
    drop(server);
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(
        refused,
        "the port still accepts connections after the stub was dropped"
    );
}

#[test]
fn a_request_that_never_ends_its_head_is_cut_off() {
    let server = stub();
    let addr = server.addr();
    // Without a bound the server would buffer all of it, waiting for a line break.
    let sent = async_std::task::block_on(async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the stub");
        let junk = vec![b'x'; 256 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match async_std::future::timeout(Duration::from_secs(5), stream.write_all(&junk)).await
            {
                Ok(Ok(())) => sent += junk.len(),
                _ => break,
            }
        }
        sent
    });
    assert!(sent < 64 << 20, "the stub read 64 MiB of a request head");
    let (status, _) = raw_post(addr, b"{}");
    assert_eq!(status, 200, "the stub stopped serving");
}

#[test]
fn fail_first_answers_503_with_retry_after_then_succeeds_per_key() {
    let server = stub();
    let client = Client::new();
    let call = |key: &str| {
        let body = json!({"fail_first": {"count": 2, "retry_after": 0.5, "key": key}});
        let endpoint = Endpoint::post("f", server.url()).json(body);
        async_std::task::block_on(client.call(&endpoint))
    };
    for _ in 0..2 {
        let outcome = call("a");
        let reply = outcome.reply().expect("a reply");
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers.get("retry-after").as_deref(), Some("0.5"));
    }
    assert_eq!(call("a").reply().map(|r| r.status), Some(200));
    assert_eq!(
        call("b").reply().map(|r| r.status),
        Some(503),
        "keys count apart"
    );
    assert_eq!(server.requests_received(), 4);
}

#[test]
fn fail_first_can_close_the_connection_without_a_reply() {
    let server = stub();
    let body = json!({"fail_first": {"count": 1, "close": true}});
    let endpoint = Endpoint::post("closing", server.url()).json(body);
    let client = Client::new();
    let first = async_std::task::block_on(client.call(&endpoint));
    let err = first.error().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("closed the connection without replying"),
        "{first:?}"
    );
    let second = async_std::task::block_on(client.call(&endpoint));
    assert_eq!(second.reply().map(|r| r.status), Some(200), "{second:?}");
}

#[test]
fn a_tail_makes_that_share_of_calls_sleep_its_own_time() {
    let server = stub();
    let url = server.url();
    let always = Endpoint::post("tail", &url)
        .json(json!({"sleep_time": 0, "tail": {"p": 1.0, "sleep_time": 0.3}}));
    let never = Endpoint::post("head", &url)
        .json(json!({"sleep_time": 0, "tail": {"p": 0.0, "sleep_time": 5}}));
    let report = async_std::task::block_on(Client::new().gather(&[always, never]));
    assert!(
        report.outcomes[0].elapsed >= Duration::from_millis(300),
        "{report:?}"
    );
    assert!(
        report.outcomes[1].elapsed < Duration::from_secs(2),
        "{report:?}"
    );
}
