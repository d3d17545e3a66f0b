//! Hedged requests: a second copy of a late idempotent request, the first complete reply
//! winning and the loser's connection closed; never for a POST nor for a prompt reply;
//! the hedge budget; and the adaptive delay once an origin has enough samples. The
//! server's counters witness every copy sent.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::task;
use common::{call, hung_up_within, read_request, status, stub, wait_for, RawServer, OK};
use fanout::{Client, Endpoint, HedgePolicy};
use serde_json::json;

/// Wide: this runs on a shared 2-core machine.
const MARGIN: Duration = Duration::from_secs(1);

/// A server that holds the first request to each path starting with `/slow` for
/// `hold` (unless the client hangs up first) and answers every other request at once.
/// It records the path of every request, and counts the held requests whose client
/// hung up before the reply.
struct SlowFirstServer {
    server: RawServer,
    paths: Arc<Mutex<Vec<String>>>,
    hung_up: Arc<AtomicUsize>,
}

impl SlowFirstServer {
    fn start(hold: Duration) -> Self {
        let paths = Arc::new(Mutex::new(Vec::<String>::new()));
        let hung_up = Arc::new(AtomicUsize::new(0));
        let (seen, gone) = (paths.clone(), hung_up.clone());
        let server = RawServer::start(move |mut stream| {
            let (seen, gone) = (seen.clone(), gone.clone());
            async move {
                while let Some(request) = read_request(&mut stream).await {
                    let path = String::from_utf8_lossy(&request)
                        .split(' ')
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let first = {
                        let mut seen = seen.lock().expect("the path list");
                        let first = !seen.contains(&path);
                        seen.push(path.clone());
                        first
                    };
                    if first && path.starts_with("/slow") && hung_up_within(&stream, hold).await {
                        gone.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    if stream.write_all(OK).await.is_err() {
                        return;
                    }
                }
            }
        });
        SlowFirstServer {
            server,
            paths,
            hung_up,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// How many requests came for `path`.
    fn requests_to(&self, path: &str) -> usize {
        let paths = self.paths.lock().expect("the path list");
        paths.iter().filter(|p| *p == path).count()
    }

    fn requests(&self) -> usize {
        self.paths.lock().expect("the path list").len()
    }

    fn hung_up(&self) -> usize {
        self.hung_up.load(Ordering::SeqCst)
    }
}

fn hedging(policy: HedgePolicy) -> Client {
    Client::builder().hedge(policy).build().expect("a client")
}

#[test]
fn a_late_reply_is_hedged_the_hedge_wins_and_the_loser_is_hung_up() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    let client = hedging(HedgePolicy::after(Duration::from_millis(100)));
    let outcome = call(&client, &Endpoint::get("late", server.url("/slow")));
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert!(outcome.hedged && outcome.hedge_won, "{outcome:?}");
    assert!(outcome.elapsed < Duration::from_secs(1), "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.requests_to("/slow"), 2);
    assert_eq!(server.server.connections_accepted(), 2);
    // The first copy's connection is closed by the client while the server still
    // holds its request, not left to be answered at 2 s.
    assert!(
        wait_for(MARGIN, || server.hung_up() == 1),
        "the losing copy's connection stayed open"
    );
}

#[test]
fn a_post_not_marked_idempotent_is_never_hedged() {
    let server = SlowFirstServer::start(Duration::from_secs(1));
    let client = hedging(HedgePolicy::after(Duration::from_millis(100)));
    let endpoint = Endpoint::post("post", server.url("/slow")).json(json!({"n": 1}));
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert!(!outcome.hedged && !outcome.hedge_won, "{outcome:?}");
    assert!(outcome.elapsed >= Duration::from_secs(1), "{outcome:?}");
    assert_eq!(server.requests(), 1);
    assert_eq!(server.server.connections_accepted(), 1);
}

#[test]
fn a_post_marked_idempotent_is_hedged() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    let client = hedging(HedgePolicy::after(Duration::from_millis(100)));
    let endpoint = Endpoint::post("put_like", server.url("/slow"))
        .json(json!({"n": 1}))
        .idempotent(true);
    let outcome = call(&client, &endpoint);
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert!(outcome.hedged && outcome.hedge_won, "{outcome:?}");
    assert_eq!(server.requests_to("/slow"), 2);
}

#[test]
fn a_reply_before_the_delay_is_not_hedged() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    let client = hedging(HedgePolicy::after(Duration::from_millis(500)));
    let endpoints: Vec<_> = (0..10)
        .map(|i| Endpoint::get(format!("quick_{i}"), server.url("/fast")))
        .collect();
    for endpoint in &endpoints {
        let outcome = call(&client, endpoint);
        assert_eq!(status(&outcome), Some(200), "{outcome:?}");
        assert!(!outcome.hedged, "{outcome:?}");
    }
    assert_eq!(server.requests(), 10);
    // One keep-alive connection served them all: no copy ever opened another.
    assert_eq!(server.server.connections_accepted(), 1);
}

#[test]
fn the_first_reply_wins_even_when_the_hedge_fails() {
    // The first request is answered after 400 ms; every later one gets its connection
    // closed without a byte.
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let server = RawServer::start(move |mut stream| {
        let counter = counter.clone();
        async move {
            while read_request(&mut stream).await.is_some() {
                if counter.fetch_add(1, Ordering::SeqCst) > 0 {
                    return;
                }
                task::sleep(Duration::from_millis(400)).await;
                if stream.write_all(OK).await.is_err() {
                    return;
                }
            }
        }
    });
    let client = hedging(HedgePolicy::after(Duration::from_millis(50)));
    let outcome = call(&client, &Endpoint::get("patient", server.url("/")));
    assert_eq!(status(&outcome), Some(200), "{outcome:?}");
    assert!(outcome.hedged && !outcome.hedge_won, "{outcome:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn hedging_stops_when_its_budget_is_spent() {
    let server = stub();
    // No share of extra requests: only the 10 tokens the hedge budget starts with.
    let client = hedging(HedgePolicy::after(Duration::from_millis(10)).budget(0.0));
    let endpoints: Vec<_> = (0..40)
        .map(|i| {
            Endpoint::post(format!("slow_{i}"), server.url())
                .json(json!({"sleep_time": 0.2}))
                .idempotent(true)
        })
        .collect();
    let report = task::block_on(client.gather(&endpoints));
    assert!(report.all_replied(), "{report:?}");
    let hedged = report.summary().hedges_sent();
    // Every call was slow enough to want a hedge: exactly the 10 banked were sent.
    assert_eq!(hedged, 10, "{}", report.summary());
    let requests = server.requests_received();
    assert!((40..=50).contains(&requests), "{requests} requests");
}

#[test]
fn an_adaptive_delay_hedges_only_once_the_origin_has_enough_samples() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    let client = hedging(HedgePolicy::adaptive());
    let fast = Endpoint::get("fast", server.url("/fast"));
    for _ in 0..40 {
        assert_eq!(status(&call(&client, &fast)), Some(200));
    }
    // 40 samples of the origin: too few to trust a percentile, so no hedge at all.
    let unhedged = call(&client, &Endpoint::get("slow_1", server.url("/slow_1")));
    assert_eq!(status(&unhedged), Some(200), "{unhedged:?}");
    assert!(!unhedged.hedged, "{unhedged:?}");
    assert!(unhedged.elapsed >= Duration::from_secs(2), "{unhedged:?}");
    assert_eq!(server.requests_to("/slow_1"), 1);

    for _ in 0..20 {
        assert_eq!(status(&call(&client, &fast)), Some(200));
    }
    // 61 samples, nearly all fast: the 95th percentile is milliseconds.
    let hedged = call(&client, &Endpoint::get("slow_2", server.url("/slow_2")));
    assert_eq!(status(&hedged), Some(200), "{hedged:?}");
    assert!(hedged.hedged && hedged.hedge_won, "{hedged:?}");
    assert!(hedged.elapsed < Duration::from_secs(1), "{hedged:?}");
    assert_eq!(server.requests_to("/slow_2"), 2);
    assert!(server.requests_to("/fast") >= 60);
}

#[test]
fn the_summary_counts_hedged_calls_and_the_hedges_that_won() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    let client = hedging(HedgePolicy::after(Duration::from_millis(100)));
    let endpoints = [
        Endpoint::get("late", server.url("/slow")),
        Endpoint::get("prompt", server.url("/fast")),
    ];
    let report = task::block_on(client.gather(&endpoints));
    assert!(report.all_replied(), "{report:?}");
    let summary = report.summary();
    assert_eq!((summary.hedges_sent(), summary.hedges_won()), (1, 1));
    assert_eq!(report.to_json()["summary"]["hedges_sent"], 1);
    assert_eq!(report.outcomes[0].to_json()["hedged"], true);
    assert_eq!(server.requests_to("/slow"), 2);
    assert_eq!(server.requests_to("/fast"), 1);
}

#[test]
fn a_healthy_spell_banks_no_burst_of_hedges() {
    let server = SlowFirstServer::start(Duration::from_secs(2));
    // The delay leaves a loaded machine time to send every first copy (each deposits
    // its share) before the first hedge draws on the bank.
    let client = hedging(HedgePolicy::after(Duration::from_millis(500)));
    // 300 prompt calls earn 15 hedges at 5%, but the bank holds 10 at most.
    let fast: Vec<_> = (0..300)
        .map(|i| Endpoint::get(format!("fast_{i}"), server.url("/fast")))
        .collect();
    assert!(task::block_on(client.gather(&fast)).all_replied());
    let slow: Vec<_> = (0..40)
        .map(|i| Endpoint::get(format!("slow_{i}"), server.url(&format!("/slow_{i}"))))
        .collect();
    let report = task::block_on(client.gather(&slow));
    assert!(report.all_replied(), "{report:?}");
    assert_eq!(report.summary().hedges_sent(), 10, "{}", report.summary());
}
