//! Gathering: concurrency, order, and one outcome per endpoint whatever happens to it.

mod common;

use std::time::Duration;

use common::{stub, RawServer};
use fanout::{Client, Endpoint, ErrorKind, Report};
use serde_json::json;

fn sleeper(name: &str, url: &str, seconds: f64) -> Endpoint {
    Endpoint::post(name, url).json(json!({"sleep_time": seconds}))
}

fn gather(endpoints: &[Endpoint]) -> Report {
    async_std::task::block_on(Client::new().gather(endpoints))
}

#[test]
fn calls_run_at_once_not_one_after_another() {
    let server = stub();
    let url = server.url();
    let endpoints = [
        sleeper("a", &url, 0.2),
        sleeper("b", &url, 0.3),
        sleeper("c", &url, 0.4),
    ];
    let report = gather(&endpoints);
    assert!(report.all_replied(), "{report:?}");
    // Sequential calls would take 0.9 s; the slowest alone takes 0.4 s.
    assert!(
        report.elapsed >= Duration::from_millis(400),
        "{:?}",
        report.elapsed
    );
    assert!(
        report.elapsed < Duration::from_millis(800),
        "took {:?}",
        report.elapsed
    );
    assert_eq!(
        server.connections_accepted(),
        3,
        "each concurrent call opens its own connection"
    );
}

#[test]
fn outcomes_keep_input_order_not_finishing_order() {
    let server = stub();
    let url = server.url();
    let endpoints = [
        sleeper("slowest", &url, 0.3),
        sleeper("middle", &url, 0.15),
        sleeper("fastest", &url, 0.0),
    ];
    let report = gather(&endpoints);
    let names: Vec<_> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["slowest", "middle", "fastest"]);
    let echoed: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| o.reply().map(|r| r.body["data"]["sleep_time"].clone()))
        .collect();
    assert_eq!(
        echoed,
        [Some(json!(0.3)), Some(json!(0.15)), Some(json!(0.0))]
    );
    assert!(report.outcomes[2].elapsed < report.outcomes[0].elapsed);
}

#[test]
fn a_timeout_costs_only_its_own_call() {
    let server = stub();
    let url = server.url();
    let endpoints = [
        sleeper("quick", &url, 0.1),
        sleeper("stuck", &url, 10.0).timeout(Duration::from_millis(300)),
        sleeper("steady", &url, 0.5),
    ];
    let report = gather(&endpoints);
    assert_eq!(report.outcomes[0].reply().map(|r| r.status), Some(200));
    assert_eq!(report.outcomes[2].reply().map(|r| r.status), Some(200));
    let err = report.outcomes[1].error().expect("the stuck call fails");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        err.to_string(),
        "stuck: timed out after 0.3 s waiting for the response"
    );
    assert!(report.outcomes[1].elapsed < Duration::from_secs(2));
    assert!(
        report.elapsed < Duration::from_secs(3),
        "the batch waited for the stuck call: {:?}",
        report.elapsed
    );
}

#[test]
fn an_empty_body_reads_as_null() {
    let server = RawServer::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let report = gather(&[Endpoint::get("empty", server.url("/"))]);
    let reply = report.outcomes[0].reply().expect("an empty reply");
    assert_eq!((reply.status, &reply.body), (200, &serde_json::Value::Null));
}

#[test]
fn an_invalid_endpoint_is_reported_without_stopping_the_batch() {
    let server = stub();
    let endpoints = [
        Endpoint::post("ftp", "ftp://127.0.0.1/api"),
        sleeper("ok", &server.url(), 0.0),
        Endpoint::post("no_url", "not a url"),
    ];
    let report = gather(&endpoints);
    assert_eq!(report.outcomes.len(), 3);
    for i in [0, 2] {
        let err = report.outcomes[i].error().expect("invalid");
        assert_eq!(err.kind(), ErrorKind::InvalidEndpoint, "{err}");
    }
    assert!(report.outcomes[0]
        .error()
        .is_some_and(|e| e.message().contains("unsupported protocol `ftp`")));
    assert_eq!(report.outcomes[1].reply().map(|r| r.status), Some(200));
    assert_eq!(
        server.connections_accepted(),
        1,
        "nothing was sent for the invalid ones"
    );
}

#[test]
fn gather_runs_under_a_plain_block_on_without_an_async_std_runtime() {
    let server = stub();
    let url = server.url();
    let endpoints = [sleeper("a", &url, 0.1), sleeper("b", &url, 0.2)];
    let report = futures::executor::block_on(Client::new().gather(&endpoints));
    assert!(report.all_replied(), "{report:?}");
    assert!(
        report.elapsed < Duration::from_millis(290),
        "{:?}",
        report.elapsed
    );
}

#[async_std::test]
async fn gather_runs_inside_an_async_std_application() {
    let server = stub();
    let endpoints = [sleeper("a", &server.url(), 0.0)];
    let report = Client::new().gather(&endpoints).await;
    assert_eq!(
        report.outcomes[0].reply().map(|r| r.body["status"].clone()),
        Some(json!("success"))
    );
}

#[test]
fn dropping_the_gather_future_cancels_the_calls_in_flight() {
    // The server holds the request unanswered and reports when the client hangs up.
    let (hung_up, hang_ups) = std::sync::mpsc::channel::<()>();
    let server = RawServer::start(move |mut stream| {
        let hung_up = hung_up.clone();
        async move {
            let _ = common::read_request(&mut stream).await;
            let mut byte = [0u8; 1];
            if let Ok(0) = async_std::io::ReadExt::read(&mut stream, &mut byte).await {
                let _ = hung_up.send(());
            }
        }
    });
    let endpoints = [
        Endpoint::get("slow", server.url("/")),
        Endpoint::get("slower", server.url("/")),
    ];
    let client = Client::new();
    let result = async_std::task::block_on(async_std::future::timeout(
        Duration::from_millis(300),
        client.gather(&endpoints),
    ));
    assert!(result.is_err(), "the gather should still have been running");
    for call in ["slow", "slower"] {
        assert!(
            hang_ups.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the {call} call's connection was not closed when the gather was dropped"
        );
    }
}

#[test]
fn a_concurrency_limit_keeps_order_and_starts_each_timeout_with_its_turn() {
    let server = stub();
    let url = server.url();
    // With two at a time, the last two calls wait 0.6 s for their turn and then take
    // 0.2 s; their own 0.6 s timeout must not run while they wait.
    let endpoints: Vec<_> = (0..8)
        .map(|i| sleeper(&format!("call_{i}"), &url, 0.2).timeout(Duration::from_millis(600)))
        .collect();
    let client = Client::builder()
        .concurrency(2)
        .build()
        .expect("a valid client");
    let report = async_std::task::block_on(client.gather(&endpoints));
    assert!(report.all_replied(), "{report:?}");
    let names: Vec<_> = report.outcomes.iter().map(|o| o.name.clone()).collect();
    assert_eq!(
        names,
        (0..8).map(|i| format!("call_{i}")).collect::<Vec<_>>()
    );
    // Four rounds of 0.2 s: at least 0.8 s, so the limit held.
    assert!(
        report.elapsed >= Duration::from_millis(800),
        "{:?}",
        report.elapsed
    );
    assert!(
        server.connections_accepted() <= 2,
        "at most two connections: {}",
        server.connections_accepted()
    );
}

#[test]
fn a_concurrency_of_zero_is_refused() {
    let err = Client::builder()
        .concurrency(0)
        .build()
        .expect_err("0 is no limit");
    assert_eq!(err.to_string(), "concurrency must be at least 1");
}
