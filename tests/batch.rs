//! Batches: results as they land, the concurrency limit seen from the server, a
//! deadline for the whole batch, fail-fast, and what cancellation does to connections.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::prelude::*;
use async_std::task;
use common::{
    closed_port_url, hung_up_within, read_request, sleeper, stub, wait_for, RawServer, OK,
};
use fanout::{Client, Endpoint, ErrorKind, FailFast, Outcome};
use futures::StreamExt;

/// Wide: this runs on a shared 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);

/// A server that answers each request after `delay`, counting the requests it holds at
/// once (the most at any moment), and the connections the client has closed.
struct CountingServer {
    server: RawServer,
    most_at_once: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl CountingServer {
    fn start(delay: Duration) -> Self {
        let now = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (n, most, gone) = (now.clone(), most_at_once.clone(), closed.clone());
        let server = RawServer::start(move |mut stream| {
            let (n, most, gone) = (n.clone(), most.clone(), gone.clone());
            async move {
                while read_request(&mut stream).await.is_some() {
                    let holding = n.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(holding, Ordering::SeqCst);
                    // Held for `delay`, unless the client hangs up first.
                    let hung_up = hung_up_within(&stream, delay).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    if hung_up || stream.write_all(OK).await.is_err() {
                        break;
                    }
                }
                gone.fetch_add(1, Ordering::SeqCst);
            }
        });
        CountingServer {
            server,
            most_at_once,
            closed,
        }
    }
}

#[test]
fn the_stream_yields_outcomes_as_they_land_with_their_input_index() {
    let server = stub();
    let url = server.url();
    let endpoints = vec![
        sleeper("slowest", &url, 0.6),
        sleeper("fastest", &url, 0.0),
        sleeper("middle", &url, 0.3),
    ];
    let client = Client::new();
    let started = Instant::now();
    let landed: Vec<(usize, String, Duration)> = task::block_on(
        client
            .gather_stream(&endpoints)
            .map(|(i, o)| (i, o.name, started.elapsed()))
            .collect(),
    );
    let order: Vec<(usize, &str)> = landed.iter().map(|(i, n, _)| (*i, n.as_str())).collect();
    assert_eq!(order, [(1, "fastest"), (2, "middle"), (0, "slowest")]);
    // The first came long before the last: it was handed over as it landed.
    assert!(
        landed[0].2 + Duration::from_millis(300) < landed[2].2,
        "{landed:?}"
    );
}

#[test]
fn the_stream_takes_owned_endpoints_and_keeps_the_concurrency_limit() {
    let counting = CountingServer::start(Duration::from_millis(50));
    let url = counting.server.url("/");
    let client = Client::builder().concurrency(3).build().expect("a client");
    let endpoints = (0..30).map(|i| Endpoint::get(format!("call_{i}"), &url));
    let mut indexes: Vec<usize> = task::block_on(
        client
            .gather_stream(endpoints)
            .map(|(i, o)| {
                assert_eq!(o.reply().map(|r| r.status), Some(200), "{o:?}");
                i
            })
            .collect(),
    );
    indexes.sort_unstable();
    assert_eq!(indexes, (0..30).collect::<Vec<_>>());
    let most = counting.most_at_once.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&most),
        "the server held {most} requests at once"
    );
}

#[test]
fn a_lazy_source_is_pulled_only_as_slots_free() {
    let server = stub();
    let url = server.url();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let source = futures::stream::iter(0..).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        sleeper(&format!("call_{i}"), &url, 0.0)
    });
    let client = Client::builder().concurrency(4).build().expect("a client");
    let first_ten: Vec<_> = task::block_on(
        client
            .batch()
            .stream_from(source)
            .take(10)
            .collect::<Vec<_>>(),
    );
    assert_eq!(first_ten.len(), 10);
    // An endless source: only what the slots held was ever taken from it.
    let taken = pulled.load(Ordering::SeqCst);
    assert!(
        taken <= 10 + 4,
        "{taken} endpoints were pulled for 10 outcomes"
    );
}

#[test]
fn the_deadline_cuts_calls_in_flight_and_cancels_those_not_started() {
    let server = stub();
    let url = server.url();
    let endpoints: Vec<_> = (1..=4)
        .map(|n| sleeper(&format!("tmp_{n}"), &url, n as f64))
        .collect();
    let client = Client::builder().concurrency(2).build().expect("a client");
    let deadline = Duration::from_millis(1500);
    let report = task::block_on(client.batch().deadline(deadline).gather(&endpoints));
    let kinds: Vec<Option<ErrorKind>> = report
        .outcomes
        .iter()
        .map(|o| o.error().map(|e| e.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            None,
            Some(ErrorKind::Timeout),
            Some(ErrorKind::Timeout),
            Some(ErrorKind::Cancelled)
        ],
        "{report:?}"
    );
    for cut in &report.outcomes[1..3] {
        let message = cut.error().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("the batch deadline of 1.5 s passed"),
            "{message}"
        );
    }
    let message = report.outcomes[3].error().map(|e| e.to_string());
    assert!(
        message
            .as_deref()
            .unwrap_or_default()
            .contains("before the call started"),
        "{message:?}"
    );
    assert!(report.elapsed >= deadline, "{:?}", report.elapsed);
    assert!(report.elapsed < deadline + MARGIN, "{:?}", report.elapsed);
}

fn failed_first(outcome: &Outcome) -> String {
    outcome.error().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn fail_fast_cancels_the_rest_naming_the_endpoint_that_failed() {
    let server = stub();
    let url = server.url();
    // Fails after 0.5 s, long after `quick` has its reply: it hangs up without one.
    let hangs_up = RawServer::start(|mut stream| async move {
        if read_request(&mut stream).await.is_some() {
            task::sleep(Duration::from_millis(500)).await;
        }
    });
    let endpoints = [
        sleeper("slow", &url, 5.0),
        Endpoint::get("down", hangs_up.url("/")),
        sleeper("quick", &url, 0.0),
        sleeper("later", &url, 5.0),
    ];
    let client = Client::builder().concurrency(3).build().expect("a client");
    let report = task::block_on(
        client
            .batch()
            .fail_fast(FailFast::OnError)
            .gather(&endpoints),
    );
    assert_eq!(report.outcomes.len(), 4);
    assert!(report.elapsed < MARGIN, "{:?}", report.elapsed);
    let kind = |i: usize| report.outcomes[i].error().map(|e| e.kind());
    assert_eq!(kind(1), Some(ErrorKind::Protocol));
    assert_eq!(report.outcomes[2].reply().map(|r| r.status), Some(200));
    for i in [0, 3] {
        assert_eq!(
            kind(i),
            Some(ErrorKind::Cancelled),
            "{:?}",
            report.outcomes[i]
        );
        assert!(
            failed_first(&report.outcomes[i]).contains("`down` failed first"),
            "{}",
            failed_first(&report.outcomes[i])
        );
    }
}

#[test]
fn fail_fast_on_status_stops_at_a_non_2xx_reply_but_not_without_it() {
    let not_found = RawServer::answering(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}");
    let server = stub();
    let endpoints = [
        Endpoint::get("missing", not_found.url("/")),
        sleeper("slow", &server.url(), 5.0),
    ];
    let client = Client::new();
    let report = task::block_on(
        client
            .batch()
            .fail_fast(FailFast::OnErrorOrStatus)
            .gather(&endpoints),
    );
    assert_eq!(report.outcomes[0].reply().map(|r| r.status), Some(404));
    assert_eq!(
        report.outcomes[1].error().map(|e| e.kind()),
        Some(ErrorKind::Cancelled)
    );
    let endpoints = [
        Endpoint::get("missing", not_found.url("/")),
        sleeper("short", &server.url(), 0.2),
    ];
    let report = task::block_on(
        client
            .batch()
            .fail_fast(FailFast::OnError)
            .gather(&endpoints),
    );
    assert!(report.all_replied(), "{report:?}");
}

#[test]
fn cancelled_calls_close_their_connections_instead_of_pooling_them() {
    let counting = CountingServer::start(Duration::from_secs(3));
    let url = counting.server.url("/");
    let endpoints = [
        Endpoint::get("held_1", &url),
        Endpoint::get("held_2", &url),
        Endpoint::get("down", closed_port_url()),
    ];
    let client = Client::new();
    let report = task::block_on(
        client
            .batch()
            .fail_fast(FailFast::OnError)
            .gather(&endpoints),
    );
    assert_eq!(
        report.outcomes[0].error().map(|e| e.kind()),
        Some(ErrorKind::Cancelled)
    );
    // The server sees both held connections closed by the client, long before it
    // would have answered them, so neither can have gone back to the pool.
    let closed = || counting.closed.load(Ordering::SeqCst);
    wait_for(MARGIN, || closed() >= 2);
    assert_eq!(closed(), 2);
    assert_eq!(counting.server.connections_accepted(), 2);
}

#[test]
fn the_summary_counts_kinds_and_orders_its_percentiles() {
    let server = stub();
    let url = server.url();
    let mut endpoints: Vec<_> = (0..8)
        .map(|i| sleeper(&format!("ok_{i}"), &url, 0.05 * f64::from(i)))
        .collect();
    endpoints.push(Endpoint::post("bad", "gopher://127.0.0.1/"));
    let report = task::block_on(Client::new().gather(&endpoints));
    let summary = report.summary();
    assert_eq!(
        (summary.total(), summary.replied(), summary.failed()),
        (9, 8, 1)
    );
    assert_eq!(summary.errors_of(ErrorKind::InvalidEndpoint), 1);
    let (p50, p90, max) = (
        summary.latency(50.0),
        summary.latency(90.0),
        summary.latency(100.0),
    );
    assert!(p50 <= p90 && p90 <= max, "{summary}");
    assert!(max >= Duration::from_millis(350), "{summary}");
    let json = report.to_json();
    assert_eq!(json["summary"]["errors"]["invalid_endpoint"], 1);
    assert!(json["summary"]["latency_ms"]["p99"]
        .as_f64()
        .is_some_and(|ms| ms >= 300.0));
}

#[test]
fn fail_fast_sends_nothing_more_once_a_call_has_failed() {
    let server = stub();
    let url = server.url();
    let endpoints = [
        Endpoint::post("bad", "gopher://127.0.0.1/"),
        sleeper("next", &url, 0.0),
        sleeper("last", &url, 0.0),
    ];
    let client = Client::builder().concurrency(1).build().expect("a client");
    let report = task::block_on(
        client
            .batch()
            .fail_fast(FailFast::OnError)
            .gather(&endpoints),
    );
    for cancelled in &report.outcomes[1..] {
        assert_eq!(
            cancelled.error().map(|e| e.kind()),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(cancelled.attempts, 0, "{cancelled:?}");
    }
    assert_eq!(
        server.requests_received(),
        0,
        "a request left after the failure"
    );
}
