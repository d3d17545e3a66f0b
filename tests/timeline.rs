//! The picture of a batch: valid XML, one bar per call in input order, widths in
//! proportion to the calls' times, failures marked with their kind, big batches sampled.

mod common;

use std::time::Duration;

use common::{closed_port_url, stub};
use fanout::{Client, Endpoint, Phase};
use serde_json::json;

/// The `data-*` attributes and phase widths of each bar, in document order.
struct Bar {
    index: usize,
    name: String,
    kind: Option<String>,
    elapsed_ms: f64,
    width: f64,
}

fn bars(svg: &str) -> Vec<Bar> {
    let doc = roxmltree::Document::parse(svg).expect("the picture is well-formed XML");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("call"))
        .map(|g| Bar {
            index: g
                .attribute("data-index")
                .and_then(|i| i.parse().ok())
                .expect("an index"),
            name: g.attribute("data-name").unwrap_or_default().to_owned(),
            kind: g.attribute("data-kind").map(str::to_owned),
            elapsed_ms: g
                .attribute("data-elapsed-ms")
                .and_then(|ms| ms.parse().ok())
                .expect("an elapsed time"),
            width: g
                .children()
                .filter(|r| r.attribute("class") == Some("phase"))
                .filter_map(|r| r.attribute("width")?.parse::<f64>().ok())
                .sum(),
        })
        .collect()
}

#[test]
fn the_demo_draws_one_bar_per_call_in_order_with_widths_in_proportion() {
    let server = stub();
    let url = server.url();
    let endpoints: Vec<Endpoint> = [0.4, 0.1, 0.2]
        .iter()
        .enumerate()
        .map(|(i, s)| Endpoint::post(format!("call_{i}"), &url).json(json!({"sleep_time": s})))
        .chain([Endpoint::post("down", closed_port_url())])
        .collect();
    let report = async_std::task::block_on(Client::new().gather(&endpoints));
    let drawn = bars(&report.timeline_svg());
    let names: Vec<&str> = drawn.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["call_0", "call_1", "call_2", "down"]);
    assert_eq!(
        drawn.iter().map(|b| b.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // One scale for every bar: width / time is the same for each (the 0.4 s call is
    // drawn four times as wide as the 0.1 s one).
    let scales: Vec<f64> = drawn[..3].iter().map(|b| b.width / b.elapsed_ms).collect();
    for scale in &scales {
        assert!((scale / scales[0] - 1.0).abs() < 0.05, "{scales:?}");
    }
    assert!(
        drawn[0].width > 3.0 * drawn[1].width,
        "{} vs {}",
        drawn[0].width,
        drawn[1].width
    );
    assert_eq!(drawn[3].kind.as_deref(), Some("connect"));
    assert!(drawn[..3].iter().all(|b| b.kind.is_none()));
}

#[test]
fn phases_tile_each_call_and_a_queued_call_shows_its_wait() {
    let server = stub();
    let url = server.url();
    let endpoints: Vec<Endpoint> = (0..2)
        .map(|i| Endpoint::post(format!("call_{i}"), &url).json(json!({"sleep_time": 0.2})))
        .collect();
    let client = Client::builder().concurrency(1).build().expect("a client");
    let report = async_std::task::block_on(client.gather(&endpoints));
    let second = &report.outcomes[1].timeline;
    let phases: Vec<Phase> = second.phases().map(|(p, _, _)| p).collect();
    assert_eq!(
        phases,
        [
            Phase::Queued,
            Phase::Connecting,
            Phase::Waiting,
            Phase::ReadingBody
        ]
    );
    assert!(second.start() >= Duration::from_millis(200), "{second:?}");
    let svg = report.timeline_svg();
    assert!(svg.contains(r#"data-phase="queued""#));
}

#[test]
fn ten_thousand_calls_make_a_sampled_picture_of_reasonable_size() {
    let endpoints: Vec<Endpoint> = (0..10_000)
        .map(|i| Endpoint::post(format!("bad_{i}"), "gopher://127.0.0.1/"))
        .collect();
    let report = async_std::task::block_on(Client::new().gather(&endpoints));
    let svg = report.timeline_svg();
    let drawn = bars(&svg);
    assert_eq!(drawn.len(), 10_000 / 25);
    assert_eq!(drawn[1].index, 25);
    assert!(
        svg.contains("one call in 25 shown"),
        "the sampling is not said"
    );
    assert!(svg.len() < 512 * 1024, "{} bytes", svg.len());
    assert!(drawn
        .iter()
        .all(|b| b.kind.as_deref() == Some("invalid_endpoint")));
}
