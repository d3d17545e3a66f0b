//! Retries: what is sent again and what never is, how long the waits are, the endpoint's
//! timeout as the budget of all attempts, the retry budget, and how the attempts show in
//! the outcome. The server's counters witness every request that was (or was not) sent.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::task;
use common::{
    call, closed_port_url, read_request, sleeper, status, stub, wait_for, RawServer, Stub, OK,
};
use fanout::{Client, Endpoint, ErrorKind, Outcome, RetryBudget, RetryPolicy};
use serde_json::{json, Value};

/// Wide: this runs on a shared 2-core machine.
const MARGIN: Duration = Duration::from_secs(1);

fn client_with(policy: RetryPolicy) -> Client {
    Client::builder()
        .retry(policy)
        .jitter_seed(3)
        .build()
        .expect("a client")
}

fn kind(outcome: &Outcome) -> Option<ErrorKind> {
    outcome.error().map(|e| e.kind())
}

/// A POST whose first `count` requests carrying `key` get 503, with `Retry-After:
/// retry_after` seconds when given.
fn failing_first(
    name: &str,
    url: &str,
    key: &str,
    count: u64,
    retry_after: Option<f64>,
) -> Endpoint {
    let mut fail = json!({"count": count, "status": 503, "key": key});
    if let Some(after) = retry_after {
        fail["retry_after"] = after.into();
    }
    Endpoint::post(name, url).json(json!({ "fail_first": fail }))
}

/// The `host:port` a URL points at.
fn authority(url: &str) -> String {
    let url = fanout::Url::parse(url).expect("a valid url");
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().expect("a port")
    )
}

#[test]
fn a_refused_connection_is_retried_until_the_server_is_up_even_for_a_post() {
    let url = closed_port_url();
    let addr: SocketAddr = authority(&url).parse().expect("a socket address");
    // Nothing listens for the first 400 ms. With seed 3 the nine waits of
    // `backoff(100 ms, 200 ms)` add up to about 1 s, so the server is up well before
    // the attempts run out.
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        Stub::start(addr)
    });
    let client = client_with(
        RetryPolicy::new(10).backoff(Duration::from_millis(100), Duration::from_millis(200)),
    );
    let outcome = call(&client, &sleeper("late", &url, 0.0));
    let server = starter
        .join()
        .expect("the starter thread")
        .expect("a stub on the freed port");
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert!(outcome.attempts > 1, "{outcome:?}");
    // A refused connect never reached the server: the POST arrived exactly once.
    assert_eq!(server.requests_received(), 1);
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn a_refused_connection_without_a_policy_fails_after_one_attempt() {
    let outcome = call(&Client::new(), &sleeper("down", &closed_port_url(), 0.0));
    assert_eq!(kind(&outcome), Some(ErrorKind::Connect), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
}

#[test]
fn a_listed_status_is_retried_for_an_idempotent_post_after_its_retry_after() {
    let server = stub();
    // Jitter alone would wait at most 1 ms, then 2 ms: only `Retry-After` makes 0.2 s.
    let client = client_with(
        RetryPolicy::new(3)
            .retry_statuses([503])
            .backoff(Duration::from_millis(1), Duration::from_secs(1)),
    );
    let endpoint = failing_first("flaky", &server.url(), "twice", 2, Some(0.1)).idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(outcome.attempts, 3);
    assert_eq!(server.requests_received(), 3);
    assert!(
        outcome.elapsed >= Duration::from_millis(200),
        "two waits of Retry-After 0.1 s, yet {:?}",
        outcome.elapsed
    );
}

#[test]
fn a_listed_status_without_a_policy_is_the_reply() {
    let server = stub();
    let endpoint = failing_first("flaky", &server.url(), "once", 2, Some(0.1)).idempotent(true);
    let outcome = call(&Client::new(), &endpoint);
    assert_eq!(status(&outcome), Some(503), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.requests_received(), 1);
}

#[test]
fn a_retry_after_longer_than_the_cap_waits_only_the_cap() {
    let server = stub();
    let client = client_with(
        RetryPolicy::new(2)
            .retry_statuses([503])
            .backoff(Duration::from_millis(10), Duration::from_millis(200)),
    );
    let endpoint =
        failing_first("slow_to_heal", &server.url(), "k", 1, Some(30.0)).idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(server.requests_received(), 2);
    assert!(
        outcome.elapsed >= Duration::from_millis(200) && outcome.elapsed < Duration::from_secs(5),
        "Retry-After 30 s under a 200 ms cap, yet {:?}",
        outcome.elapsed
    );
}

#[test]
fn a_post_not_marked_idempotent_is_never_sent_twice_for_a_status() {
    let policy = RetryPolicy::new(3)
        .retry_statuses([503])
        .retry_timeouts(true)
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let client = client_with(policy);

    let server = stub();
    let outcome = call(&client, &failing_first("post", &server.url(), "p", 1, None));
    assert_eq!(status(&outcome), Some(503), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.requests_received(), 1);

    // The same call marked idempotent is retried: the policy would have resent it.
    let server = stub();
    let endpoint = failing_first("put_like", &server.url(), "p", 1, None).idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(server.requests_received(), 2);
}

#[test]
fn a_post_not_marked_idempotent_is_never_sent_twice_after_a_timeout() {
    let policy = RetryPolicy::new(3)
        .retry_statuses([503])
        .retry_timeouts(true)
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .attempt_timeout(Duration::from_millis(300));
    let client = client_with(policy);

    let server = stub();
    let endpoint = sleeper("post", &server.url(), 2.0).timeout(Duration::from_secs(5));
    let outcome = call(&client, &endpoint);
    assert_eq!(kind(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert!(
        outcome.elapsed < Duration::from_millis(300) + MARGIN,
        "{outcome:?}"
    );
    assert_eq!(server.requests_received(), 1);

    // Marked idempotent, the same timeout is retried to the policy's three attempts.
    let server = stub();
    let endpoint = sleeper("put_like", &server.url(), 2.0)
        .timeout(Duration::from_secs(5))
        .idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(kind(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
    assert_eq!(outcome.attempts, 3);
    assert!(wait_for(MARGIN, || server.requests_received() == 3));
}

/// A server that answers the first request on each connection and keeps it open, then
/// reads the second and closes without a byte: a keep-alive connection gone stale just
/// as it was reused. Counts every request read.
fn stale_on_second_request() -> (RawServer, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let server = RawServer::start(move |mut stream| {
        let counter = counter.clone();
        async move {
            if read_request(&mut stream).await.is_none() {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(OK).await.is_err() {
                return;
            }
            if read_request(&mut stream).await.is_some() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (server, requests)
}

#[test]
fn an_idempotent_call_on_a_stale_keep_alive_connection_is_resent_on_a_new_one() {
    let (server, requests) = stale_on_second_request();
    let client = client_with(RetryPolicy::new(2));
    let url = server.url("/");
    let primed = call(&client, &Endpoint::get("prime", &url));
    assert_eq!(status(&primed), Some(200), "{primed:?}");
    let outcome = call(&client, &Endpoint::get("reused", &url));
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(server.connections_accepted(), 2);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[test]
fn a_stale_keep_alive_connection_without_a_policy_is_a_protocol_error() {
    let (server, requests) = stale_on_second_request();
    let client = Client::new();
    let url = server.url("/");
    let primed = call(&client, &Endpoint::get("prime", &url));
    assert_eq!(status(&primed), Some(200), "{primed:?}");
    let outcome = call(&client, &Endpoint::get("reused", &url));
    assert_eq!(kind(&outcome), Some(ErrorKind::Protocol), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_post_on_a_stale_keep_alive_connection_is_not_resent() {
    let (server, requests) = stale_on_second_request();
    let client = client_with(RetryPolicy::new(2));
    let url = server.url("/");
    let post = |name: &str| Endpoint::post(name, &url).json(json!({"n": 1}));
    let primed = call(&client, &post("prime"));
    assert_eq!(status(&primed), Some(200), "{primed:?}");
    let outcome = call(&client, &post("reused"));
    assert_eq!(kind(&outcome), Some(ErrorKind::Protocol), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn the_failure_message_lists_the_cause_of_every_attempt() {
    let url = closed_port_url();
    let client = client_with(
        RetryPolicy::new(3).backoff(Duration::from_millis(10), Duration::from_millis(20)),
    );
    let outcome = call(&client, &Endpoint::get("down", &url));
    assert_eq!(kind(&outcome), Some(ErrorKind::Connect), "{outcome:?}");
    assert_eq!(outcome.attempts, 3);
    let refused = format!("connection refused by {}", authority(&url));
    let expected = format!("down: after 3 attempts: {refused}; {refused}; {refused}");
    let message = outcome.error().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(message, expected);
}

#[test]
fn backoff_waits_stay_under_their_doubling_ceilings() {
    let url = closed_port_url();
    // Waits of at most 100, 200 and 400 ms: 0.7 s in all.
    let client = client_with(
        RetryPolicy::new(4).backoff(Duration::from_millis(100), Duration::from_secs(1)),
    );
    let outcome = call(&client, &Endpoint::get("down", &url));
    assert_eq!(kind(&outcome), Some(ErrorKind::Connect), "{outcome:?}");
    assert_eq!(outcome.attempts, 4);
    assert!(
        outcome.elapsed > Duration::ZERO && outcome.elapsed < Duration::from_millis(700) + MARGIN,
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn backoff_waits_stay_under_the_cap() {
    let url = closed_port_url();
    // Doubling alone would allow 0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1 s; the cap of
    // 150 ms allows 0.1 + 4 × 0.15 = 0.7 s.
    let client = client_with(
        RetryPolicy::new(6).backoff(Duration::from_millis(100), Duration::from_millis(150)),
    );
    let outcome = call(&client, &Endpoint::get("down", &url));
    assert_eq!(outcome.attempts, 6, "{outcome:?}");
    assert!(
        outcome.elapsed < Duration::from_millis(700) + MARGIN,
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn the_endpoint_timeout_is_the_budget_for_all_attempts() {
    let server = stub();
    let client = client_with(RetryPolicy::standard(10).attempt_timeout(Duration::from_millis(400)));
    let endpoint = sleeper("slow", &server.url(), 2.0)
        .idempotent(true)
        .timeout(Duration::from_millis(1500));
    let outcome = call(&client, &endpoint);
    assert_eq!(kind(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
    // Attempts end at 0.4 s and about 0.8 s; a third may start if its 0.4 s still fits.
    assert!((2..=4).contains(&outcome.attempts), "{outcome:?}");
    assert!(
        outcome.elapsed < Duration::from_millis(1500) + MARGIN,
        "eleven attempts of 0.4 s were allowed, yet the budget was 1.5 s: {:?}",
        outcome.elapsed
    );
    let attempts = outcome.attempts as usize;
    assert!(
        wait_for(MARGIN, || server.requests_received() == attempts),
        "{} requests for {attempts} attempts",
        server.requests_received()
    );
    let message = outcome.error().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&format!("after {attempts} attempts: ")),
        "{message}"
    );
}

#[test]
fn a_retry_that_could_not_finish_within_the_budget_is_not_started() {
    let server = stub();
    let client = client_with(RetryPolicy::standard(10).attempt_timeout(Duration::from_secs(1)));
    let endpoint = sleeper("slow", &server.url(), 3.0)
        .idempotent(true)
        .timeout(Duration::from_millis(1500));
    let outcome = call(&client, &endpoint);
    assert_eq!(kind(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
    // After the first attempt's 1 s, 0.5 s is left: not enough for a wait and 1 s more.
    assert_eq!(outcome.attempts, 1, "{outcome:?}");
    assert!(outcome.elapsed >= Duration::from_secs(1), "{outcome:?}");
    assert_eq!(server.requests_received(), 1);
}

#[test]
fn the_retry_budget_caps_retries_across_a_batch_of_refused_calls() {
    let url = closed_port_url();
    let client = Client::builder()
        .retry(RetryPolicy::new(5).backoff(Duration::from_millis(1), Duration::from_millis(2)))
        .retry_budget(RetryBudget::new(0.0, 3, 3))
        .jitter_seed(3)
        .build()
        .expect("a client");
    let endpoints: Vec<_> = (0..20)
        .map(|i| Endpoint::get(format!("down_{i}"), &url))
        .collect();
    let report = task::block_on(client.gather(&endpoints));
    let attempts: u32 = report.outcomes.iter().map(|o| o.attempts).sum();
    assert_eq!(attempts, 20 + 3, "{report:?}");
    assert!(report.summary().retried() <= 3);
    assert!(report
        .outcomes
        .iter()
        .all(|o| kind(o) == Some(ErrorKind::Connect)));
}

#[test]
fn the_retry_budget_caps_the_requests_a_failing_server_sees() {
    let server = stub();
    let client = Client::builder()
        .retry(
            RetryPolicy::new(5)
                .retry_statuses([503])
                .backoff(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .retry_budget(RetryBudget::new(0.0, 3, 3))
        .jitter_seed(3)
        .build()
        .expect("a client");
    let endpoints: Vec<_> = (0..20)
        .map(|i| {
            failing_first(&format!("sick_{i}"), &server.url(), "all", 1000, None).idempotent(true)
        })
        .collect();
    let report = task::block_on(client.gather(&endpoints));
    assert!(
        report.outcomes.iter().all(|o| status(o) == Some(503)),
        "{report:?}"
    );
    let attempts: u32 = report.outcomes.iter().map(|o| o.attempts).sum();
    assert_eq!(attempts, 23);
    assert_eq!(server.requests_received(), 23);
}

#[test]
fn the_endpoint_policy_replaces_the_clients() {
    let client = client_with(
        RetryPolicy::new(5)
            .retry_statuses([503])
            .backoff(Duration::from_millis(1), Duration::from_millis(2)),
    );
    let server = stub();
    let endpoint = failing_first("once_only", &server.url(), "k", 1, None)
        .idempotent(true)
        .retry(RetryPolicy::new(1));
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(503), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.requests_received(), 1);

    // Without its own policy the same endpoint follows the client's and is retried.
    let server = stub();
    let endpoint = failing_first("client_policy", &server.url(), "k", 1, None).idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(server.requests_received(), 2);

    // And an endpoint's policy applies where the client has none.
    let server = stub();
    let endpoint = failing_first("own_policy", &server.url(), "k", 1, None)
        .idempotent(true)
        .retry(
            RetryPolicy::new(2)
                .retry_statuses([503])
                .backoff(Duration::from_millis(1), Duration::from_millis(2)),
        );
    let outcome = call(&Client::new(), &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(server.requests_received(), 2);
}

#[test]
fn the_json_outcome_carries_the_attempt_count() {
    let server = stub();
    let client = client_with(
        RetryPolicy::new(3)
            .retry_statuses([503])
            .backoff(Duration::from_millis(1), Duration::from_millis(2)),
    );
    let endpoint = failing_first("flaky", &server.url(), "j", 2, None).idempotent(true);
    let replied = call(&client, &endpoint);
    assert_eq!(status(&replied), Some(200), "{replied:?}");
    let failed = call(&client, &Endpoint::get("down", closed_port_url()));
    assert_eq!(kind(&failed), Some(ErrorKind::Connect), "{failed:?}");
    for outcome in [&replied, &failed] {
        assert_eq!(outcome.attempts, 3, "{outcome:?}");
        let json = outcome.to_json();
        assert_eq!(json["attempts"], Value::from(outcome.attempts), "{json}");
    }
    let message = failed.to_json()["error"]["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("after 3 attempts")),
        "{message}"
    );
}
