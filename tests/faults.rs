//! Fault injection: servers that stall, trickle, reset, lie about lengths or speak
//! something other than HTTP. Each fault is gathered in one batch beside a healthy call
//! to a stub, and must end in its own classified outcome, within its timeout, with a
//! message that names the endpoint, while the healthy call keeps its 200 reply.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::net::TcpStream;
use async_std::task;
use common::{
    assert_failed, assert_replied, assert_timed_out, beside_a_healthy_call, closed_port_url,
    http_response, read_request, stub, RawServer, MARGIN, PATIENT,
};
use fanout::{Client, Endpoint, Error, ErrorKind, Method};
use serde_json::{json, Value};

/// The timeout of a faulty endpoint whose fault only a timeout can end.
const LIMIT: Duration = Duration::from_millis(500);

/// The body limit of the clients that meet oversized bodies.
const BODY_LIMIT: u64 = 1 << 20;

/// Keeps a connection open, reading and discarding, until the client closes it.
async fn hold_until_closed(mut stream: TcpStream) {
    let mut sink = [0u8; 1024];
    while let Ok(1..) = stream.read(&mut sink).await {}
}

/// A server that reads each request and answers it with `head`, then stalls until the
/// client hangs up.
fn sends_then_stalls(head: &'static [u8]) -> RawServer {
    RawServer::start(move |mut stream| async move {
        if read_request(&mut stream).await.is_some() && stream.write_all(head).await.is_ok() {
            hold_until_closed(stream).await;
        }
    })
}

/// A server that reads each request, writes `at_once`, then `trickled` one byte every
/// 100 ms.
fn trickles(at_once: &'static [u8], trickled: &'static [u8]) -> RawServer {
    RawServer::start(move |mut stream| async move {
        if read_request(&mut stream).await.is_none() || stream.write_all(at_once).await.is_err() {
            return;
        }
        for byte in trickled.chunks(1) {
            if stream.write_all(byte).await.is_err() {
                return;
            }
            task::sleep(Duration::from_millis(100)).await;
        }
        hold_until_closed(stream).await;
    })
}

/// A server that reads each request, answers it with `reply`, and closes the connection.
fn answers_and_closes(reply: &'static [u8]) -> RawServer {
    RawServer::start(move |mut stream| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream.write_all(reply).await;
        }
    })
}

fn client_with_small_body_limit() -> Client {
    Client::builder()
        .body_limit(BODY_LIMIT)
        .build()
        .expect("a valid client")
}

/// The tests that measure the process's peak memory or use a lot of it take turns, so
/// that one's allocations do not show up in another's measurement.
fn heavy_turn() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's peak resident memory so far (VmHWM), in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmHWM line in /proc/self/status");
    kib * 1024
}

/// How much a body may raise the peak memory although only 1 MiB of it may be held:
/// generous, since the test binary runs other tests in parallel threads and their
/// allocations raise the same process-wide peak (the heavy ones take turns with this).
const PEAK_GROWTH: u64 = 64 << 20;

// Timeouts.

#[test]
fn a_server_that_never_answers_times_out_waiting_for_the_response() {
    let server = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_some() {
            hold_until_closed(stream).await;
        }
    });
    let faulty = Endpoint::get("silent", server.url("/")).timeout(LIMIT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_timed_out(&outcome, LIMIT, "waiting for the response");
}

#[test]
fn a_body_that_stalls_halfway_times_out_while_reading_the_body() {
    let server = sends_then_stalls(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"half\":");
    let faulty = Endpoint::get("stalled", server.url("/")).timeout(LIMIT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_timed_out(&outcome, LIMIT, "while reading the response body");
}

#[test]
fn a_body_trickled_a_byte_at_a_time_is_cut_short_by_the_timeout() {
    // 60 bytes at 100 ms each: 6 s, far past the timeout, with progress all along.
    let server = trickles(
        b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\n\r\n",
        &[b' '; 60],
    );
    let faulty = Endpoint::get("trickle_body", server.url("/")).timeout(LIMIT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_timed_out(&outcome, LIMIT, "while reading the response body");
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_cut_short_by_the_timeout() {
    // 41 bytes at 100 ms each: 4 s, far past the timeout.
    let server = trickles(b"", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
    let faulty = Endpoint::get("trickle_head", server.url("/")).timeout(LIMIT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_timed_out(&outcome, LIMIT, "waiting for the response");
}

// Broken connections and broken HTTP.

#[test]
fn a_connection_reset_after_the_request_is_a_protocol_error() {
    let server = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        // A zero linger turns the close into a reset (RST) instead of a FIN. socket2
        // needs `AsFd`, which async-std only has with its `io_safety` feature, so the
        // socket is taken back as a std one (this handle is its only one).
        let stream = std::net::TcpStream::try_from(stream).expect("the only handle");
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("set SO_LINGER");
    });
    let faulty = Endpoint::get("reset", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the server reset the connection",
        MARGIN,
    );
}

#[test]
fn a_reply_that_is_not_http_is_a_protocol_error() {
    let server = answers_and_closes(b"-ERR unknown command 'GET'\r\n\r\n");
    let faulty = Endpoint::get("not_http", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the reply is not valid HTTP/1.x",
        MARGIN,
    );
}

#[test]
fn a_reply_that_never_breaks_a_line_is_refused_without_buffering_it() {
    // 16 MiB with no line break, then silence: a head no HTTP server sends. Finite, so
    // that a client which buffers it all (as async-h1 alone does) ends in a timeout
    // rather than taking the machine's memory.
    let server = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        let block = vec![b'x'; 1 << 16];
        for _ in 0..256 {
            if stream.write_all(&block).await.is_err() {
                return;
            }
        }
        hold_until_closed(stream).await;
    });
    let faulty = Endpoint::get("no_lines", server.url("/")).timeout(Duration::from_secs(1));
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the reply head did not end within 64 KiB",
        MARGIN,
    );
}

#[test]
fn a_body_cut_off_before_its_content_length_is_a_protocol_error() {
    let server = answers_and_closes(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"cut\":");
    let faulty = Endpoint::get("cut", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let err = assert_failed(&outcome, ErrorKind::Protocol, "cut off", MARGIN);
    assert!(
        err.message().contains("7 of 100 announced body bytes"),
        "{err}"
    );
    assert_eq!(err.status(), Some(200));
}

#[test]
fn a_broken_chunk_is_a_protocol_error() {
    // The chunk announces 5 bytes but carries 7: the decoder finds `1` where CRLF belongs.
    let server = sends_then_stalls(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":1}\r\n0\r\n\r\n",
    );
    let faulty = Endpoint::get("bad_chunk", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let err = assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the chunked body is malformed",
        MARGIN,
    );
    assert_eq!(err.status(), Some(200));
}

// Bodies.

#[test]
fn a_body_that_is_not_json_is_a_decode_error_keeping_status_and_start() {
    let reply: &'static [u8] = http_response("200 OK", "text/html", "<html>oops</html>").leak();
    let server = RawServer::answering(reply);
    let faulty = Endpoint::get("html", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let err = assert_failed(&outcome, ErrorKind::Decode, "the body is not JSON", MARGIN);
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.body_prefix(), Some("<html>oops</html>"));
}

#[test]
fn json_with_invalid_utf8_in_a_string_is_a_decode_error() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"name\":\"\xff\xfe\"}",
    );
    let faulty = Endpoint::get("bad_utf8", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let err = assert_failed(&outcome, ErrorKind::Decode, "the body is not JSON", MARGIN);
    assert!(err.message().contains("unicode"), "{err}");
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.body_prefix(), Some("{\"name\":\"\u{fffd}\u{fffd}\"}"));
}

#[test]
fn an_empty_204_is_a_reply_with_a_null_body() {
    let server = RawServer::answering(b"HTTP/1.1 204 No Content\r\n\r\n");
    let faulty = Endpoint::get("no_content", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (204, &Value::Null));
}

#[test]
fn a_500_with_a_json_body_is_a_reply() {
    let reply: &'static [u8] = http_response(
        "500 Internal Server Error",
        "application/json",
        r#"{"error":"boom"}"#,
    )
    .leak();
    let server = RawServer::answering(reply);
    let faulty = Endpoint::get("broken", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let reply = assert_replied(&outcome);
    assert_eq!(
        (reply.status, &reply.body),
        (500, &json!({"error": "boom"}))
    );
}

#[test]
fn a_redirect_loop_is_a_redirect_error_found_without_going_round() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let server = RawServer::start(move |mut stream| {
        let counted = counted.clone();
        async move {
            while read_request(&mut stream).await.is_some() {
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = b"HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\n\r\n";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    });
    let faulty = Endpoint::get("loop", server.url("/loop")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    let err = assert_failed(&outcome, ErrorKind::Redirect, "redirect loop", MARGIN);
    assert!(err.message().contains("/loop"), "{err}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the loop was gone round"
    );
}

// Oversized bodies.

#[test]
fn a_4_gib_content_length_is_refused_at_once_without_reading_it() {
    let _turn = heavy_turn();
    let server = sends_then_stalls(b"HTTP/1.1 200 OK\r\ncontent-length: 4294967296\r\n\r\n[1,2,3");
    assert_cut_at_the_limit(
        &server,
        "huge",
        "the body announced 4294967296 bytes, over the 1048576 byte limit",
    );
}

/// Calls `server` with a 1 MiB body limit and checks that the call ends in
/// `body_too_large` saying `words`, quickly, with the peak memory near the limit.
fn assert_cut_at_the_limit(server: &RawServer, name: &str, words: &str) {
    let faulty = Endpoint::get(name, server.url("/")).timeout(PATIENT);
    let before = peak_memory();
    let outcome = beside_a_healthy_call(&client_with_small_body_limit(), faulty);
    let grown = peak_memory() - before;
    let err = assert_failed(&outcome, ErrorKind::BodyTooLarge, words, MARGIN);
    assert_eq!(err.status(), Some(200));
    assert!(grown < PEAK_GROWTH, "peak memory grew by {grown} bytes");
}

#[test]
fn an_endless_chunked_body_is_cut_at_the_limit_with_memory_near_it() {
    let _turn = heavy_turn();
    let server = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_none()
            || stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let mut chunk = b"10000\r\n".to_vec();
        chunk.resize(chunk.len() + 0x10000, b' ');
        chunk.extend_from_slice(b"\r\n");
        while stream.write_all(&chunk).await.is_ok() {}
    });
    assert_cut_at_the_limit(&server, "endless", "the body passed the 1048576 byte limit");
}

// Endpoints that cannot be reached or sent.

#[test]
fn a_closed_port_is_a_connect_error() {
    let faulty = Endpoint::get("closed", closed_port_url()).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::Connect,
        "connection refused by 127.0.0.1:",
        MARGIN,
    );
}

#[test]
fn a_name_that_does_not_resolve_is_a_connect_error_within_the_timeout() {
    let limit = Duration::from_secs(1);
    let faulty = Endpoint::get("nowhere", "http://nothing.invalid/api").timeout(limit);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    // A resolver that answers says the name is unknown; one that never answers leaves
    // the call to its timeout, counted as connecting.
    let (kind, words) = match outcome.error().map(Error::kind) {
        Some(ErrorKind::Timeout) => (ErrorKind::Timeout, "timed out after 1 s while connecting"),
        _ => (
            ErrorKind::Connect,
            "could not resolve host `nothing.invalid`",
        ),
    };
    let err = assert_failed(&outcome, kind, words, limit + MARGIN);
    assert_eq!(
        err.message().matches("nothing.invalid").count(),
        1,
        "the host is named more than once: {err}"
    );
}

/// The one endpoint described by `json`, loaded as from an endpoints file.
fn parse_one(json: &str) -> Endpoint {
    let mut endpoints = fanout::parse_endpoints(json, "inline").expect("well-typed endpoints");
    assert_eq!(endpoints.len(), 1);
    endpoints.remove(0)
}

#[test]
fn an_unknown_protocol_is_an_invalid_endpoint() {
    let faulty =
        parse_one(r#"{"p": {"protocol": "gopher", "host": "127.0.0.1", "port": 1, "route": "/"}}"#);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::InvalidEndpoint,
        "unsupported protocol `gopher`",
        MARGIN,
    );
}

#[test]
fn a_port_out_of_range_is_an_invalid_endpoint() {
    let faulty = parse_one(
        r#"{"far": {"protocol": "http", "host": "127.0.0.1", "port": 70000, "route": "/"}}"#,
    );
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::InvalidEndpoint,
        "port 70000 is out of range",
        MARGIN,
    );
}

// Batches.

#[test]
fn an_empty_batch_gives_no_outcomes_at_once() {
    let report = task::block_on(Client::new().gather(&[]));
    assert!(report.outcomes.is_empty());
    assert_eq!(report.to_json()["results"], json!([]));
    assert!(report.elapsed < MARGIN, "{:?}", report.elapsed);
}

#[test]
fn duplicate_names_are_kept_each_with_its_own_outcome() {
    let stub = stub();
    let endpoints = [
        Endpoint::post("twin", stub.url()).json(json!({"sleep_time": 0.1})),
        Endpoint::get("twin", closed_port_url()),
        Endpoint::post("healthy", stub.url()).json(json!({"sleep_time": 0})),
    ];
    let report = task::block_on(Client::new().gather(&endpoints));
    let names: Vec<_> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["twin", "twin", "healthy"]);
    let first = assert_replied(&report.outcomes[0]);
    assert_eq!(first.body["data"], json!({"sleep_time": 0.1}));
    assert_failed(
        &report.outcomes[1],
        ErrorKind::Connect,
        "connection refused",
        MARGIN,
    );
    assert_eq!(assert_replied(&report.outcomes[2]).status, 200);
}

#[test]
fn ten_thousand_endpoints_under_a_concurrency_limit_all_reply_in_input_order() {
    let _turn = heavy_turn();
    let stub = stub();
    let url = stub.url();
    let endpoints: Vec<_> = (0..10_000)
        .map(|i| {
            Endpoint::post(format!("call_{i}"), &url)
                .json(json!({"sleep_time": 0, "i": i}))
                .timeout(Duration::from_secs(40))
        })
        .collect();
    let client = Client::builder()
        .concurrency(500)
        .build()
        .expect("a valid client");
    let report = task::block_on(client.gather(&endpoints));
    assert_eq!(report.outcomes.len(), 10_000);
    for (i, outcome) in report.outcomes.iter().enumerate() {
        assert_eq!(outcome.name, format!("call_{i}"));
        let reply = outcome
            .reply()
            .unwrap_or_else(|| panic!("expected a reply, got {outcome:?}"));
        // The echoed index shows each outcome is its own call's, not just in its place.
        assert_eq!((reply.status, &reply.body["data"]["i"]), (200, &json!(i)));
    }
    assert!(
        report.elapsed < Duration::from_secs(45),
        "{:?}",
        report.elapsed
    );
    assert!(
        stub.connections_accepted() <= 500,
        "more connections than the limit: {}",
        stub.connections_accepted()
    );
}

#[test]
fn a_chunked_end_that_arrives_in_pieces_does_not_stall_the_call() {
    // The last chunk's closing CRLF comes in two writes. async-h1's decoder would wait for
    // the second without asking to be woken; alone in its batch, the call would then sit
    // until its timeout.
    let server = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        let head =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n{\"ok\":1}\r\n0\r\n\r";
        if stream.write_all(head).await.is_err() {
            return;
        }
        task::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"\n").await.is_ok() {
            hold_until_closed(stream).await;
        }
    });
    let endpoint = Endpoint::get("pieces", server.url("/")).timeout(Duration::from_secs(5));
    let outcome = task::block_on(Client::new().call(&endpoint));
    assert_eq!(
        outcome.reply().map(|r| r.body.clone()),
        Some(json!({"ok": 1})),
        "{outcome:?}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(2),
        "the call stalled for {:?}",
        outcome.elapsed
    );
}

#[test]
fn a_head_request_reads_no_body_and_keeps_its_connection() {
    // A reply to HEAD announces a length but carries no body; reading one would hang.
    let server = RawServer::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
    let client = Client::new();
    let endpoint = Endpoint::new("head", Method::Head, server.url("/")).timeout(PATIENT);
    for _ in 0..2 {
        let outcome = task::block_on(client.call(&endpoint));
        assert_eq!(
            outcome.reply().map(|r| (r.status, r.body.clone())),
            Some((200, Value::Null)),
            "{outcome:?}"
        );
        assert!(outcome.elapsed < MARGIN, "took {:?}", outcome.elapsed);
    }
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn a_body_after_the_head_may_hold_any_utf8() {
    let server = RawServer::answering(
        "HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"name\":\"café\"}".as_bytes(),
    );
    let outcome = task::block_on(Client::new().call(&Endpoint::get("utf8", server.url("/"))));
    assert_eq!(
        outcome.reply().map(|r| r.body.clone()),
        Some(json!({"name": "café"})),
        "{outcome:?}"
    );
}

#[test]
fn a_transfer_coding_other_than_chunked_is_refused_and_its_connection_dropped() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    let client = Client::new();
    for _ in 0..2 {
        let faulty = Endpoint::get("gzipped", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, faulty);
        assert_failed(
            &outcome,
            ErrorKind::Protocol,
            "Transfer-Encoding `gzip` is not supported",
            MARGIN,
        );
    }
    assert_eq!(
        server.connections_accepted(),
        2,
        "a connection with an unread body was reused"
    );
}

#[test]
fn an_endless_chunk_size_line_is_refused_long_before_the_timeout() {
    // `000…` forever is a valid start of a chunk size; a decoder that reads it byte by
    // byte without a bound never returns while bytes keep coming.
    let server = RawServer::start(|mut stream| async move {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if read_request(&mut stream).await.is_none() || stream.write_all(head).await.is_err() {
            return;
        }
        let zeros = vec![b'0'; 64 * 1024];
        while stream.write_all(&zeros).await.is_ok() {}
    });
    let faulty = Endpoint::get("zeros", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), faulty);
    assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the chunked body is malformed",
        MARGIN,
    );
}

#[test]
fn a_reply_listing_close_among_connection_options_is_not_reused() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 2\r\n\r\n{}",
    );
    let client = Client::new();
    let endpoint = Endpoint::get("closing", server.url("/")).timeout(PATIENT);
    for _ in 0..2 {
        let outcome = task::block_on(client.call(&endpoint));
        assert_eq!(outcome.reply().map(|r| r.status), Some(200), "{outcome:?}");
    }
    assert_eq!(server.connections_accepted(), 2);
}
