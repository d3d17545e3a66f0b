//! HTTP/1.x as real servers speak it: HTTP/1.0 and close-delimited replies, interim 1xx
//! replies, any status number, big heads and many fields, bytes over 0x7F in header
//! values, chunked bodies with trailers, redirects, content codings, the request as the
//! server sees it, and the idle pool's cap. Each reply is sent byte for byte by a
//! `RawServer`; where it fits, the call is gathered beside a healthy call to a stub, which
//! must keep its 200 reply.

mod common;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::task;
use common::{
    assert_failed, assert_replied, assert_timed_out, beside_a_healthy_call, call, gzip,
    http_response, read_request, wait_for, RawServer, MARGIN, PATIENT,
};
use fanout::{BodyFormat, Client, Endpoint, ErrorKind};
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

/// The `User-Agent` every request carries unless told otherwise.
const USER_AGENT: &str = concat!("fanout/", env!("CARGO_PKG_VERSION"));

/// A client built from `builder`, which must be valid.
fn built(builder: fanout::ClientBuilder) -> Client {
    builder.build().expect("a valid client")
}

/// One request as the server read it: its head as text, and its body.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn new(bytes: &[u8]) -> Seen {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole request head")
            + 4;
        Seen {
            head: String::from_utf8_lossy(&bytes[..end]).into_owned(),
            body: bytes[end..].to_vec(),
        }
    }

    /// `GET`, `POST`, …
    fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or_default()
    }

    /// The request target, such as `/api?x=1`.
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    /// The header lines as sent, name and value, without the request line.
    fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name, value.trim()))
    }

    /// Every value of the field `name` (any case), in order.
    fn values(&self, name: &str) -> Vec<&str> {
        self.fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The one value of the field `name`: `None` when absent, a panic when repeated.
    fn value(&self, name: &str) -> Option<&str> {
        let values = self.values(name);
        assert!(
            values.len() <= 1,
            "{name} sent {} times: {self:?}",
            values.len()
        );
        values.first().copied()
    }
}

/// The requests a recording server has read, in order.
type Requests = Arc<Mutex<Vec<Seen>>>;

fn requests_of(requests: &Requests) -> Vec<Seen> {
    requests
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// A server that keeps every request it reads and answers each with `answer(request)`,
/// keeping the connection open for more.
fn recording<F>(answer: F) -> (RawServer, Requests)
where
    F: Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
{
    let requests = Requests::default();
    let kept = requests.clone();
    let answer = Arc::new(answer);
    let server = RawServer::start(move |mut stream| {
        let (kept, answer) = (kept.clone(), answer.clone());
        async move {
            while let Some(bytes) = read_request(&mut stream).await {
                let seen = Seen::new(&bytes);
                let reply = answer(&seen);
                kept.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(seen);
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    });
    (server, requests)
}

/// Calls `endpoint` alone on a recording server that answers `{}`, and gives the one
/// request the server read.
fn request_sent(client: &Client, endpoint: impl FnOnce(&RawServer) -> Endpoint) -> Seen {
    let (server, requests) = recording(|_| http_response("200 OK", "application/json", "{}"));
    let outcome = call(client, &endpoint(&server));
    assert_eq!(assert_replied(&outcome).status, 200);
    let mut requests = requests_of(&requests);
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.remove(0)
}

/// A server that reads one request, writes each of `pieces` with a pause between them,
/// and closes the connection.
fn sends_in_pieces_then_closes(pieces: Vec<Vec<u8>>) -> RawServer {
    let pieces = Arc::new(pieces);
    RawServer::start(move |mut stream| {
        let pieces = pieces.clone();
        async move {
            if read_request(&mut stream).await.is_none() {
                return;
            }
            for piece in pieces.iter() {
                if stream.write_all(piece).await.is_err() {
                    return;
                }
                task::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

/// A JSON body of about 30 KB, bigger than one read of the transport.
fn big_json() -> Value {
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"id": i, "name": format!("item number {i}")}))
        .collect();
    json!({"items": items})
}

/// An HTTP/1.x reply whose body has no length: it ends when the server closes, written in
/// three pieces a while apart, so that only a read to the end gets all of it.
fn close_delimited(version: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let head = format!("HTTP/{version} 200 OK\r\ncontent-type: application/json\r\n\r\n");
    let third = body.len() / 3;
    vec![
        [head.as_bytes(), &body[..third]].concat(),
        body[third..2 * third].to_vec(),
        body[2 * third..].to_vec(),
    ]
}

/// Leaks `bytes` for a server that answers every request with them.
fn leaked(bytes: Vec<u8>) -> &'static [u8] {
    bytes.leak()
}

// HTTP/1.0 and bodies ended by close.

#[test]
fn an_http_1_0_reply_with_a_length_but_no_keep_alive_is_not_reused() {
    // The server keeps the connection open, but HTTP/1.0 without `keep-alive` means close.
    let server = RawServer::answering(b"HTTP/1.0 200 OK\r\ncontent-length: 8\r\n\r\n{\"ok\":1}");
    let client = Client::new();
    for _ in 0..2 {
        let endpoint = Endpoint::get("http10", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, endpoint);
        let reply = assert_replied(&outcome);
        assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
    }
    assert_eq!(
        server.connections_accepted(),
        2,
        "an HTTP/1.0 connection was reused"
    );
}

#[test]
fn an_http_1_0_reply_saying_keep_alive_is_reused() {
    let server = RawServer::answering(
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 8\r\n\r\n{\"ok\":1}",
    );
    let client = Client::new();
    for _ in 0..2 {
        let endpoint = Endpoint::get("http10_kept", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, endpoint);
        let reply = assert_replied(&outcome);
        assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
    }
    assert_eq!(
        server.connections_accepted(),
        1,
        "the kept-alive connection was not reused"
    );
}

#[test]
fn an_http_1_0_reply_ended_by_close_is_read_whole() {
    let body = serde_json::to_vec(&big_json()).expect("JSON");
    let server = sends_in_pieces_then_closes(close_delimited("1.0", &body));
    let client = Client::new();
    let endpoint = Endpoint::get("http10_close", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, reply.bytes()), (200, &body[..]));
    assert_eq!(reply.body, big_json());
}

#[test]
fn an_http_1_1_body_ended_by_close_is_read_whole_and_its_connection_not_reused() {
    let body = serde_json::to_vec(&big_json()).expect("JSON");
    let server = sends_in_pieces_then_closes(close_delimited("1.1", &body));
    let client = Client::new();
    for _ in 0..2 {
        let endpoint = Endpoint::get("http11_close", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, endpoint);
        let reply = assert_replied(&outcome);
        assert_eq!((reply.status, reply.bytes().len()), (200, body.len()));
        assert_eq!(reply.body, big_json());
    }
    assert_eq!(server.connections_accepted(), 2);
}

// Interim replies and status numbers.

/// A server that answers each request with `interim`, then after a pause with `last`,
/// keeping the connection open.
fn interim_then(interim: &'static [u8], last: &'static [u8]) -> RawServer {
    RawServer::start(move |mut stream| async move {
        while read_request(&mut stream).await.is_some() {
            if stream.write_all(interim).await.is_err() {
                return;
            }
            task::sleep(Duration::from_millis(50)).await;
            if stream.write_all(last).await.is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_100_continue_before_the_reply_is_passed_over() {
    let server = interim_then(
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"ok\":1}",
    );
    let endpoint = Endpoint::post("continued", server.url("/"))
        .json(json!({"k": "v"}))
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
}

#[test]
fn a_103_early_hints_before_the_reply_is_passed_over_with_its_fields() {
    let server = interim_then(
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"ok\":1}",
    );
    let client = Client::new();
    for _ in 0..2 {
        let endpoint = Endpoint::get("hinted", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, endpoint);
        let reply = assert_replied(&outcome);
        assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
        // The headers are the final reply's, not the hint's.
        assert_eq!(reply.headers.get("link"), None, "{:?}", reply.headers);
        assert_eq!(
            reply.headers.get("content-type").as_deref(),
            Some("application/json")
        );
    }
    assert_eq!(server.connections_accepted(), 1);
}

/// Checks that a reply with the status line `status_line` and a JSON body comes back as a
/// reply with `status` and that body.
fn assert_status_is_a_reply(status_line: &str, status: u16) {
    let reply = leaked(http_response(
        status_line,
        "application/json",
        r#"{"error":"upstream"}"#,
    ));
    let server = RawServer::answering(reply);
    let endpoint = Endpoint::get("odd_status", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!(
        (reply.status, &reply.body),
        (status, &json!({"error": "upstream"}))
    );
}

#[test]
fn a_499_client_closed_request_is_a_reply_with_its_number() {
    assert_status_is_a_reply("499 Client Closed Request", 499);
}

#[test]
fn a_520_unknown_error_is_a_reply_with_its_number() {
    assert_status_is_a_reply("520 Web Server Returned an Unknown Error", 520);
}

#[test]
fn a_999_is_a_reply_with_its_number() {
    assert_status_is_a_reply("999 Request Denied", 999);
}

// Heads.

#[test]
fn a_32_kib_head_with_one_big_field_is_read() {
    let big = "a".repeat(32 * 1024);
    let head = format!(
        "HTTP/1.1 200 OK\r\nx-big: {big}\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{{\"ok\":1}}"
    );
    let server = RawServer::answering(leaked(head.into_bytes()));
    let endpoint = Endpoint::get("big_head", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
    assert_eq!(reply.headers.get("x-big").as_deref(), Some(big.as_str()));
}

#[test]
fn two_hundred_header_fields_are_read() {
    let mut head = "HTTP/1.1 200 OK\r\n".to_owned();
    for i in 0..200 {
        head.push_str(&format!("x-field-{i}: value {i}\r\n"));
    }
    head.push_str("content-length: 8\r\n\r\n{\"ok\":1}");
    let server = RawServer::answering(leaked(head.into_bytes()));
    let endpoint = Endpoint::get("many_fields", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
    assert!(reply.headers.len() >= 200, "{} fields", reply.headers.len());
    assert_eq!(reply.headers.get("x-field-0").as_deref(), Some("value 0"));
    assert_eq!(
        reply.headers.get("x-field-199").as_deref(),
        Some("value 199")
    );
}

#[test]
fn a_head_over_the_head_limit_is_a_protocol_error() {
    let big = "a".repeat(8 * 1024);
    let head = format!("HTTP/1.1 200 OK\r\nx-big: {big}\r\ncontent-length: 2\r\n\r\n{{}}");
    let server = RawServer::answering(leaked(head.into_bytes()));
    let client = built(Client::builder().max_head_bytes(4096));
    let endpoint = Endpoint::get("head_too_big", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    assert_failed(
        &outcome,
        ErrorKind::Protocol,
        "the reply head did not end within 4 KiB",
        MARGIN,
    );
}

#[test]
fn header_values_with_bytes_over_0x7f_are_read() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\nx-name: caf\xc3\xa9\r\nx-latin: caf\xe9\r\ncontent-length: 2\r\n\r\n{}",
    );
    let endpoint = Endpoint::get("obs_text", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("x-name").as_deref(), Some("café"));
    assert_eq!(reply.headers.get("x-latin").as_deref(), Some("caf\u{fffd}"));
    assert_eq!(reply.headers.get_bytes("x-latin"), Some(&b"caf\xe9"[..]));
}

#[test]
fn reply_headers_are_found_whatever_their_case() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\nX-Request-ID: abc\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\
          Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    let endpoint = Endpoint::get("cased", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    for name in ["x-request-id", "X-REQUEST-ID", "X-Request-Id"] {
        assert_eq!(reply.headers.get(name).as_deref(), Some("abc"), "{name}");
    }
    let cookies: Vec<_> = reply.headers.get_all("SET-COOKIE").collect();
    assert_eq!(cookies, [&b"a=1"[..], &b"b=2"[..]]);
    assert_eq!(reply.headers.get("x-missing"), None);
}

// Chunked bodies.

#[test]
fn a_chunked_body_with_trailers_is_read_and_its_connection_reused() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum, x-other\r\n\r\n\
          4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nx-checksum: abc\r\nx-other: 1\r\n\r\n",
    );
    let client = Client::new();
    for _ in 0..3 {
        let endpoint = Endpoint::get("trailers", server.url("/")).timeout(PATIENT);
        let outcome = beside_a_healthy_call(&client, endpoint);
        let reply = assert_replied(&outcome);
        assert_eq!((reply.status, &reply.body), (200, &json!({"a": 1})));
    }
    // Trailers left unread would be taken for the next reply, or keep the connection out
    // of the pool.
    assert_eq!(server.connections_accepted(), 1);
}

// Redirects.

/// A server that answers `/from` with a `status` redirect to `/to` (with a small body),
/// and `/to` with `{"landed": true}`.
fn redirecting(status: u16) -> (RawServer, Requests) {
    recording(move |seen| match seen.path() {
        "/from" => {
            format!("HTTP/1.1 {status} Redirect\r\nlocation: /to\r\ncontent-length: 5\r\n\r\nmoved")
                .into_bytes()
        }
        "/to" => http_response("200 OK", "application/json", r#"{"landed":true}"#),
        _ => http_response("404 Not Found", "text/plain", "no"),
    })
}

/// POSTs a JSON body to a server redirecting with `status`; checks the final reply and
/// gives the second request the server read.
fn a_post_redirected_with(status: u16) -> Seen {
    let (server, requests) = redirecting(status);
    let endpoint = Endpoint::post("redirected", server.url("/from"))
        .json(json!({"k": "v"}))
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"landed": true})));
    assert!(reply.url.as_str().ends_with("/to"), "{}", reply.url);
    assert_eq!(reply.url.as_str(), server.url("/to"));
    // The redirect's body was read, so the same connection carried the second request.
    assert_eq!(server.connections_accepted(), 1);
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let first = &requests[0];
    assert_eq!((first.method(), first.path()), ("POST", "/from"));
    assert_eq!(first.body, br#"{"k":"v"}"#);
    assert_eq!(requests[1].path(), "/to");
    requests[1].clone()
}

/// Checks that `second` is a GET with no body.
fn assert_bodiless_get(second: &Seen) {
    assert_eq!(second.method(), "GET", "{second:?}");
    assert!(second.body.is_empty(), "{second:?}");
    assert_eq!(second.value("content-type"), None, "{second:?}");
    assert!(
        matches!(second.value("content-length"), None | Some("0")),
        "{second:?}"
    );
}

/// Checks that `second` is a POST with the JSON body of the first.
fn assert_same_post(second: &Seen) {
    assert_eq!(second.method(), "POST", "{second:?}");
    assert_eq!(second.body, br#"{"k":"v"}"#, "{second:?}");
    assert_eq!(second.value("content-type"), Some("application/json"));
    assert_eq!(second.value("content-length"), Some("9"));
}

#[test]
fn a_301_turns_a_post_into_a_get_without_body() {
    assert_bodiless_get(&a_post_redirected_with(301));
}

#[test]
fn a_302_turns_a_post_into_a_get_without_body() {
    assert_bodiless_get(&a_post_redirected_with(302));
}

#[test]
fn a_303_turns_a_post_into_a_get_without_body() {
    assert_bodiless_get(&a_post_redirected_with(303));
}

#[test]
fn a_307_keeps_the_post_and_its_body() {
    assert_same_post(&a_post_redirected_with(307));
}

#[test]
fn a_308_keeps_the_post_and_its_body() {
    assert_same_post(&a_post_redirected_with(308));
}

/// A server whose `/hop/n` redirects to `/hop/n+1` up to `/hop/last`, which answers
/// `{"hops": last}`.
fn chain(last: usize) -> (RawServer, Requests) {
    recording(move |seen| {
        let n: usize = seen
            .path()
            .strip_prefix("/hop/")
            .and_then(|n| n.parse().ok())
            .expect("a hop");
        if n < last {
            let next = n + 1;
            format!("HTTP/1.1 302 Found\r\nlocation: /hop/{next}\r\ncontent-length: 0\r\n\r\n")
                .into_bytes()
        } else {
            http_response("200 OK", "application/json", &format!("{{\"hops\":{n}}}"))
        }
    })
}

#[test]
fn ten_redirects_in_a_row_are_followed() {
    let (server, requests) = chain(10);
    let endpoint = Endpoint::get("ten_hops", server.url("/hop/0")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"hops": 10})));
    assert_eq!(reply.url.as_str(), server.url("/hop/10"));
    assert_eq!(requests_of(&requests).len(), 11);
}

#[test]
fn an_eleventh_redirect_is_a_redirect_error_naming_the_count_and_the_last_url() {
    let (server, requests) = chain(11);
    let endpoint = Endpoint::get("eleven_hops", server.url("/hop/0")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let err = assert_failed(
        &outcome,
        ErrorKind::Redirect,
        "more than 10 redirects",
        MARGIN,
    );
    assert!(err.message().contains(&server.url("/hop/11")), "{err}");
    assert!(err.is_redirect());
    let paths: Vec<_> = requests_of(&requests)
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(paths.len(), 11, "the 11th redirect was followed: {paths:?}");
    assert_eq!(paths.last().map(String::as_str), Some("/hop/10"));
}

#[test]
fn with_redirects_off_a_302_is_a_reply() {
    let (server, requests) = redirecting(302);
    let client = built(Client::builder().redirects(0));
    let endpoint = Endpoint::get("not_followed", server.url("/from"))
        .expect(BodyFormat::Text)
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (302, &json!("moved")));
    assert_eq!(reply.headers.get("location").as_deref(), Some("/to"));
    assert_eq!(reply.url.as_str(), server.url("/from"));
    assert_eq!(requests_of(&requests).len(), 1);
}

/// Follows a 302 from `/start`, sent with `Authorization`, `Cookie` and `X-Trace`, to
/// `/landing` on the same server or on another one (another port: another origin), and
/// gives the request that landed.
fn landed_after_a_redirect(cross_origin: bool) -> Seen {
    let (other, other_requests) = recording(|_| http_response("200 OK", "application/json", "{}"));
    let location = if cross_origin {
        other.url("/landing")
    } else {
        "/landing".to_owned()
    };
    let (server, requests) = recording(move |seen| match seen.path() {
        "/start" => {
            format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
                .into_bytes()
        }
        _ => http_response("200 OK", "application/json", "{}"),
    });
    let endpoint = Endpoint::get("credentials", server.url("/start"))
        .header("Authorization", "Bearer secret")
        .header("Cookie", "session=1")
        .header("X-Trace", "abc")
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    let landing = if cross_origin { &other } else { &server };
    assert_eq!(reply.url.as_str(), landing.url("/landing"));
    let first = requests_of(&requests).remove(0);
    assert_eq!(first.path(), "/start");
    assert_eq!(first.value("authorization"), Some("Bearer secret"));
    assert_eq!(first.value("cookie"), Some("session=1"));
    let landed: Vec<_> = requests_of(if cross_origin {
        &other_requests
    } else {
        &requests
    })
    .into_iter()
    .filter(|r| r.path() == "/landing")
    .collect();
    assert_eq!(landed.len(), 1, "{landed:?}");
    landed[0].clone()
}

#[test]
fn a_redirect_to_another_origin_drops_authorization_and_cookie() {
    let landed = landed_after_a_redirect(true);
    assert_eq!(landed.value("authorization"), None, "{landed:?}");
    assert_eq!(landed.value("cookie"), None, "{landed:?}");
    assert_eq!(landed.value("x-trace"), Some("abc"), "{landed:?}");
}

#[test]
fn a_redirect_within_the_origin_keeps_authorization_and_cookie() {
    let landed = landed_after_a_redirect(false);
    assert_eq!(landed.value("authorization"), Some("Bearer secret"));
    assert_eq!(landed.value("cookie"), Some("session=1"));
    assert_eq!(landed.value("x-trace"), Some("abc"));
}

#[test]
fn a_redirect_to_ftp_is_a_redirect_error() {
    let (server, requests) = recording(|_| {
        b"HTTP/1.1 302 Found\r\nlocation: ftp://127.0.0.1/file.txt\r\ncontent-length: 0\r\n\r\n"
            .to_vec()
    });
    let endpoint = Endpoint::get("to_ftp", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    assert_failed(
        &outcome,
        ErrorKind::Redirect,
        "ftp://127.0.0.1/file.txt",
        MARGIN,
    );
    assert_eq!(requests_of(&requests).len(), 1);
}

// Content codings.

/// A JSON body that compresses well.
fn compressible() -> Value {
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"id": i, "status": "success"}))
        .collect();
    json!({"items": items})
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("zlib in memory");
    encoder.finish().expect("zlib in memory")
}

fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("deflate in memory");
    encoder.finish().expect("deflate in memory")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
    encoder.write_all(bytes).expect("brotli in memory");
    encoder.into_inner()
}

/// A 200 reply carrying `encoded`, said to be in `coding`.
fn encoded_reply(coding: &str, encoded: &[u8]) -> Vec<u8> {
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: {coding}\r\n\
         content-length: {}\r\n\r\n",
        encoded.len()
    )
    .into_bytes();
    reply.extend_from_slice(encoded);
    reply
}

/// Checks that a body encoded as `coding` (`encoded`) by a server that sends it only when
/// asked for it comes back decoded, without the fields that described it as sent.
fn assert_decoded_when_asked(coding: &'static str, encoded: Vec<u8>) {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    assert_ne!(encoded, plain);
    let (server, requests) = recording(move |seen| {
        let asked = seen
            .value("accept-encoding")
            .is_some_and(|v| v.split(',').any(|c| c.trim() == coding));
        if asked {
            encoded_reply(coding, &encoded)
        } else {
            http_response("406 Not Acceptable", "text/plain", "ask for it")
        }
    });
    let endpoint = Endpoint::get("compressed", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &compressible()));
    assert_eq!(reply.bytes(), &plain[..]);
    assert_eq!(
        reply.headers.get("content-encoding"),
        None,
        "{:?}",
        reply.headers
    );
    assert_eq!(
        reply.headers.get("content-length"),
        None,
        "{:?}",
        reply.headers
    );
    assert_eq!(
        reply.headers.get("content-type").as_deref(),
        Some("application/json")
    );
    let requests = requests_of(&requests);
    assert_eq!(
        requests[0].value("accept-encoding"),
        Some("gzip, deflate, br")
    );
}

#[test]
fn a_gzip_body_asked_for_is_decoded() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    assert_decoded_when_asked("gzip", gzip(&plain));
}

#[test]
fn a_deflate_body_in_zlib_form_is_decoded() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    assert_decoded_when_asked("deflate", zlib(&plain));
}

#[test]
fn a_deflate_body_in_raw_form_is_decoded() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    assert_decoded_when_asked("deflate", raw_deflate(&plain));
}

#[test]
fn a_br_body_asked_for_is_decoded() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    assert_decoded_when_asked("br", brotli(&plain));
}

/// A server that answers every request with `body` gzipped, asked or not.
fn always_gzipping(body: &[u8]) -> (RawServer, Requests) {
    let reply = encoded_reply("gzip", &gzip(body));
    recording(move |_| reply.clone())
}

#[test]
fn a_gzip_body_sent_unasked_is_decoded() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    let (server, requests) = always_gzipping(&plain);
    let endpoint = Endpoint::get("unasked", server.url("/"))
        .header("Accept-Encoding", "identity")
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &compressible()));
    assert_eq!(reply.headers.get("content-encoding"), None);
    assert_eq!(
        requests_of(&requests)[0].value("accept-encoding"),
        Some("identity")
    );
}

#[test]
fn with_decompression_off_a_gzip_body_stays_as_sent() {
    let plain = serde_json::to_vec(&compressible()).expect("JSON");
    let gzipped = gzip(&plain);
    let (server, requests) = always_gzipping(&plain);
    let client = built(Client::builder().decompress(false));
    let endpoint = Endpoint::get("raw_gzip", server.url("/"))
        .expect(BodyFormat::Bytes)
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &Value::Null));
    assert_eq!(reply.bytes(), &gzipped[..]);
    assert_eq!(
        reply.headers.get("content-encoding").as_deref(),
        Some("gzip")
    );
    let length = gzipped.len().to_string();
    assert_eq!(
        reply.headers.get("content-length").as_deref(),
        Some(length.as_str())
    );
    assert_eq!(requests_of(&requests)[0].value("accept-encoding"), None);
}

#[test]
fn a_corrupt_gzip_body_is_a_decode_error_naming_gzip() {
    let mut corrupt = gzip(&serde_json::to_vec(&compressible()).expect("JSON"));
    // The first byte after the 10-byte gzip header starts the first deflate block:
    // 0xFF makes it a block of the reserved type 3.
    corrupt[10] = 0xFF;
    let server = RawServer::answering(leaked(encoded_reply("gzip", &corrupt)));
    let endpoint = Endpoint::get("corrupt", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let err = assert_failed(
        &outcome,
        ErrorKind::Decode,
        "the gzip body could not be decompressed",
        MARGIN,
    );
    assert_eq!(err.status(), Some(200));
}

#[test]
fn an_unknown_content_coding_is_a_decode_error() {
    let server = RawServer::answering(leaked(encoded_reply("zstd", b"(\xb5/\xfd")));
    let endpoint = Endpoint::get("zstd", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let err = assert_failed(
        &outcome,
        ErrorKind::Decode,
        "Content-Encoding `zstd` is not supported",
        MARGIN,
    );
    assert_eq!(err.status(), Some(200));
}

/// 1 GiB of zeros gzipped at the best compression, about 1 MiB: made from a streaming
/// writer, a MiB at a time, so the GiB is never held.
/// 256 MiB of zeros, gzipped to a few hundred KiB: 256 times the client's body limit.
fn gzip_bomb() -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    for _ in 0..256 {
        encoder.write_all(&zeros).expect("gzip in memory");
    }
    encoder.finish().expect("gzip in memory")
}

#[test]
fn a_gzip_bomb_stops_at_the_body_limit_after_a_small_part_of_it() {
    let bomb = Arc::new(gzip_bomb());
    assert!(bomb.len() < 4 << 20, "the bomb is {} bytes", bomb.len());
    // The server sends the bomb 16 KiB at a time, a while apart, until the client hangs
    // up, and says how much it sent.
    let (sent_tx, sent_rx) = mpsc::channel::<usize>();
    let sending = bomb.clone();
    let server = RawServer::start(move |mut stream| {
        let (bomb, sent_tx) = (sending.clone(), sent_tx.clone());
        async move {
            if read_request(&mut stream).await.is_none() {
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n\
                 content-length: {}\r\n\r\n",
                bomb.len()
            );
            let mut sent = 0;
            if stream.write_all(head.as_bytes()).await.is_ok() {
                for piece in bomb.chunks(16 * 1024) {
                    if stream.write_all(piece).await.is_err() {
                        break;
                    }
                    sent += piece.len();
                    task::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = sent_tx.send(sent);
        }
    });
    let client = built(Client::builder().body_limit(1 << 20));
    let endpoint = Endpoint::get("bomb", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    let err = assert_failed(
        &outcome,
        ErrorKind::BodyTooLarge,
        "the body passed the 1048576 byte limit",
        MARGIN,
    );
    assert_eq!(err.status(), Some(200));
    let sent = sent_rx
        .recv_timeout(PATIENT)
        .expect("the server finished sending");
    assert!(
        sent < bomb.len() / 2,
        "the server sent {sent} of {} bytes before the client hung up",
        bomb.len()
    );
}

#[test]
fn an_identity_coded_body_is_read_as_it_is() {
    let server = RawServer::answering(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: identity\r\n\
          content-length: 8\r\n\r\n{\"ok\":1}",
    );
    let endpoint = Endpoint::get("identity", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!({"ok": 1})));
    assert_eq!(reply.bytes(), b"{\"ok\":1}");
    assert_eq!(reply.headers.get("content-length").as_deref(), Some("8"));
}

// The request as the server sees it.

#[test]
fn a_request_carries_the_default_user_agent_accept_and_accept_encoding() {
    let seen = request_sent(&Client::new(), |server| {
        Endpoint::get("defaults", server.url("/api?x=1")).timeout(PATIENT)
    });
    assert_eq!((seen.method(), seen.path()), ("GET", "/api?x=1"));
    // Names go out lower-cased, each once.
    for line in [
        format!("\r\nuser-agent: {USER_AGENT}\r\n"),
        "\r\naccept: application/json\r\n".to_owned(),
        "\r\naccept-encoding: gzip, deflate, br\r\n".to_owned(),
    ] {
        assert!(seen.head.contains(&line), "no {line:?} in {seen:?}");
    }
    assert_eq!(seen.values("user-agent").len(), 1);
    assert_eq!(seen.values("accept").len(), 1);
    let text = request_sent(&Client::new(), |server| {
        Endpoint::get("text", server.url("/"))
            .expect(BodyFormat::Text)
            .timeout(PATIENT)
    });
    assert_eq!(text.value("accept"), Some("*/*"));
}

#[test]
fn a_client_default_header_replaces_the_default_user_agent() {
    let client = built(Client::builder().default_header("User-Agent", "x"));
    let seen = request_sent(&client, |server| {
        Endpoint::get("agent", server.url("/")).timeout(PATIENT)
    });
    assert_eq!(seen.values("user-agent"), ["x"], "{seen:?}");
}

#[test]
fn an_endpoint_header_replaces_the_clients() {
    let client = built(
        Client::builder()
            .default_header("User-Agent", "x")
            .default_header("X-Team", "client"),
    );
    let seen = request_sent(&client, |server| {
        Endpoint::get("mine", server.url("/"))
            .header("user-agent", "y")
            .header("x-team", "endpoint")
            .timeout(PATIENT)
    });
    assert_eq!(seen.values("user-agent"), ["y"], "{seen:?}");
    assert_eq!(seen.values("x-team"), ["endpoint"], "{seen:?}");
}

#[test]
fn a_text_body_is_sent_as_it_is_as_plain_text() {
    let seen = request_sent(&Client::new(), |server| {
        Endpoint::post("text", server.url("/"))
            .text("hello")
            .timeout(PATIENT)
    });
    assert_eq!(seen.method(), "POST");
    assert_eq!(seen.body, b"hello");
    assert_eq!(
        seen.value("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(seen.value("content-length"), Some("5"));
}

#[test]
fn a_bytes_body_is_sent_byte_for_byte() {
    let bytes = vec![0x00, 0x9f, 0x92, 0x96, 0xff, b'\r', b'\n', b'"'];
    let sent = bytes.clone();
    let seen = request_sent(&Client::new(), move |server| {
        Endpoint::post("bytes", server.url("/"))
            .bytes(sent)
            .timeout(PATIENT)
    });
    assert_eq!(seen.body, bytes);
    assert_eq!(seen.value("content-type"), Some("application/octet-stream"));
    assert_eq!(seen.value("content-length"), Some("8"));
}

#[test]
fn a_form_body_is_url_encoded() {
    let seen = request_sent(&Client::new(), |server| {
        Endpoint::post("form", server.url("/"))
            .form([("a", "1 2"), ("b", "&")])
            .timeout(PATIENT)
    });
    assert_eq!(seen.body, b"a=1+2&b=%26");
    assert_eq!(
        seen.value("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

// Reading bodies as the endpoint expects.

const HTML: &str = "<html><body>café</body></html>";

fn html_server() -> RawServer {
    RawServer::answering(leaked(http_response("200 OK", "text/html", HTML)))
}

#[test]
fn an_html_reply_expected_as_text_is_its_text() {
    let server = html_server();
    let endpoint = Endpoint::get("html_text", server.url("/"))
        .expect(BodyFormat::Text)
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &json!(HTML)));
    assert_eq!(reply.text(), HTML);
}

#[test]
fn an_html_reply_expected_as_bytes_is_its_bytes() {
    let server = html_server();
    let endpoint = Endpoint::get("html_bytes", server.url("/"))
        .expect(BodyFormat::Bytes)
        .timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let reply = assert_replied(&outcome);
    assert_eq!((reply.status, &reply.body), (200, &Value::Null));
    assert_eq!(reply.bytes(), HTML.as_bytes());
}

#[test]
fn an_html_reply_expected_as_json_is_a_decode_error_keeping_the_status() {
    let server = html_server();
    let endpoint = Endpoint::get("html_json", server.url("/")).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&Client::new(), endpoint);
    let err = assert_failed(&outcome, ErrorKind::Decode, "the body is not JSON", MARGIN);
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.body_prefix(), Some(HTML));
}

// Connections.

/// A loopback listener whose connects hang: it has a backlog of 0, never accepts, and its
/// accept queue is full, so the kernel drops every further SYN unanswered, as a
/// non-routable address does (a fixed one such as 10.255.255.1 may be answered by
/// whatever stands between this machine and the network).
struct Unanswering {
    addr: SocketAddr,
    _listener: Socket,
    _queued: Vec<std::net::TcpStream>,
}

fn unanswering() -> Unanswering {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind a loopback port");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("a bound address");
    // Connects complete while the queue has room; the first that does not shows it full.
    let mut queued = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => queued.push(stream),
            Err(_) => {
                return Unanswering {
                    addr,
                    _listener: listener,
                    _queued: queued,
                }
            }
        }
    }
    panic!("the accept queue of {addr} never filled");
}

#[test]
fn the_connect_timeout_ends_a_connect_that_hangs_long_before_the_call_timeout() {
    let limit = Duration::from_millis(500);
    let client = built(Client::builder().connect_timeout(limit));
    let hanging = unanswering();
    let endpoint =
        Endpoint::get("unanswered", format!("http://{}/", hanging.addr)).timeout(PATIENT);
    let outcome = beside_a_healthy_call(&client, endpoint);
    assert_timed_out(&outcome, limit, "while connecting");
}

#[test]
fn after_a_batch_no_more_idle_connections_than_the_cap_stay_open() {
    // Holds each reply 100 ms, so that the batch's calls overlap, each on its own
    // connection; counts the connections the client has closed.
    let closed = Arc::new(AtomicUsize::new(0));
    let counted = closed.clone();
    let server = RawServer::start(move |mut stream| {
        let counted = counted.clone();
        async move {
            while read_request(&mut stream).await.is_some() {
                task::sleep(Duration::from_millis(100)).await;
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"ok\":1}";
                if stream.write_all(reply).await.is_err() {
                    break;
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let client = built(Client::builder().max_idle_per_origin(2));
    let endpoints: Vec<_> = (0..20)
        .map(|i| Endpoint::get(format!("call_{i}"), server.url("/")).timeout(PATIENT))
        .collect();
    let report = task::block_on(client.gather(&endpoints));
    for outcome in &report.outcomes {
        assert_eq!(outcome.reply().map(|r| r.status), Some(200), "{outcome:?}");
    }
    let accepted = server.connections_accepted();
    assert!(accepted > 2, "the batch used only {accepted} connections");
    let open = || accepted - closed.load(Ordering::SeqCst);
    wait_for(Duration::from_secs(5), || open() <= 2);
    assert!(
        open() <= 2,
        "{} of {accepted} connections still open after the batch, over the cap of 2",
        open()
    );
    // Those kept are kept for reuse.
    let again = call(&client, &endpoints[0]);
    assert_eq!(again.reply().map(|r| r.status), Some(200), "{again:?}");
    assert_eq!(
        server.connections_accepted(),
        accepted,
        "no idle connection was reused"
    );
}
