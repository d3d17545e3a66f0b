//! Tracing: each call's events arrive in phase order inside that call's own span, under
//! the batch's span, although one task polls every call of the batch.

mod common;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use common::stub;
use fanout::{Client, Endpoint};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One event as captured: its message, the endpoint of the call span it was in, and
/// the names of its spans from the outermost in.
#[derive(Debug, Clone)]
struct Captured {
    message: String,
    endpoint: Option<String>,
    spans: Vec<String>,
}

/// The `endpoint` field of a call span, kept in the span's extensions.
struct EndpointName(String);

/// Finds one field's value by name.
struct FieldOf<'a> {
    name: &'a str,
    value: Option<String>,
}

impl Visit for FieldOf<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.name {
            self.value = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == self.name {
            self.value = Some(format!("{value:?}"));
        }
    }
}

/// A layer that keeps every event with its span context.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut endpoint = FieldOf {
            name: "endpoint",
            value: None,
        };
        attrs.record(&mut endpoint);
        if let (Some(span), Some(name)) = (ctx.span(id), endpoint.value) {
            span.extensions_mut().insert(EndpointName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = FieldOf {
            name: "message",
            value: None,
        };
        event.record(&mut message);
        let scope: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let endpoint = scope.iter().find_map(|span| {
            span.extensions()
                .get::<EndpointName>()
                .map(|name| name.0.clone())
        });
        let spans = scope.iter().map(|span| span.name().to_owned()).collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Captured {
                message: message.value.unwrap_or_default(),
                endpoint,
                spans,
            });
    }
}

#[test]
fn each_calls_events_arrive_in_phase_order_inside_its_own_span() {
    let server = stub();
    let url = server.url();
    let endpoints = [
        Endpoint::post("slow", &url).json(json!({"sleep_time": 0.3})),
        Endpoint::post("fast", &url).json(json!({"sleep_time": 0})),
    ];
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let report = tracing::subscriber::with_default(subscriber, || {
        async_std::task::block_on(Client::new().gather(&endpoints))
    });
    assert!(report.all_replied(), "{report:?}");

    let events = capture.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for name in ["slow", "fast"] {
        let own: Vec<&Captured> = events
            .iter()
            .filter(|e| e.endpoint.as_deref() == Some(name))
            .collect();
        let messages: Vec<&str> = own.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "opening a new connection",
                "connected",
                "request sent",
                "reply head received",
                "body read",
                "replied"
            ],
            "{name}: {events:#?}"
        );
        for event in own {
            assert_eq!(event.spans, ["batch", "call"], "{event:?}");
        }
    }
    // The two calls ran at once: the slow one's events did not all come first.
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| e.endpoint.as_deref())
        .collect();
    let last_slow = order.iter().rposition(|n| *n == "slow");
    let first_fast_reply = events
        .iter()
        .position(|e| e.endpoint.as_deref() == Some("fast") && e.message == "replied");
    assert!(first_fast_reply < last_slow, "{order:?}");
}

#[test]
fn a_retried_call_says_so_in_its_events() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let endpoint = Endpoint::get("down", common::closed_port_url()).retry(
        fanout::RetryPolicy::new(2).backoff(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(2),
        ),
    );
    let outcome = tracing::subscriber::with_default(subscriber, || {
        async_std::task::block_on(Client::new().call(&endpoint))
    });
    assert_eq!(outcome.attempts, 2);
    let events = capture.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "opening a new connection",
            "retrying",
            "opening a new connection",
            "failed"
        ],
        "{events:#?}"
    );
    assert!(events.iter().all(|e| e.spans == ["call"]), "{events:#?}");
}
