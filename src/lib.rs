//! Gather many HTTP calls at once, each under its own timeout, and get exactly one
//! outcome per endpoint back, in order: the status and JSON body, or a classified error.
//! One call's failure never costs the others, and a batch takes as long as its slowest
//! call, not the sum. It is `asyncio.gather(..., return_exceptions=True)` for Rust, on
//! async-std, usable from any executor.
//!
#![cfg_attr(feature = "stub", doc = "```")]
#![cfg_attr(not(feature = "stub"), doc = "```ignore")]
//! use std::time::Duration;
//! use fanout::{Client, Endpoint, ErrorKind, stub::Stub};
//! use serde_json::json;
//!
//! # fn main() -> std::io::Result<()> {
//! let stub = Stub::start_local()?; // a local backend that sleeps `sleep_time` seconds
//! let endpoints = [
//!     Endpoint::post("fast", stub.url()).json(json!({"sleep_time": 0.1})),
//!     Endpoint::post("slow", stub.url())
//!         .json(json!({"sleep_time": 5}))
//!         .timeout(Duration::from_millis(300)),
//! ];
//! let report = futures::executor::block_on(Client::new().gather(&endpoints));
//!
//! let fast = report.outcomes[0].reply().expect("a reply");
//! assert_eq!((fast.status, &fast.body["status"]), (200, &json!("success")));
//! assert_eq!(report.outcomes[1].error().map(|e| e.kind()), Some(ErrorKind::Timeout));
//! assert!(report.elapsed < Duration::from_secs(5));
//! # Ok(()) }
//! ```
//!
//! Beyond `gather`: [`Client::gather_stream`] yields outcomes as they land, and
//! [`Client::batch`] sets a deadline or fail-fast for a whole batch; [`RetryPolicy`] and
//! [`HedgePolicy`] deal with transient failures and slow tails; every batch and call is
//! a `tracing` span with an event at each phase; [`Report::timeline_svg`] draws a batch.
//! Endpoints can also be loaded from JSON in the original client's shape, or from JSON
//! Lines ([`load_endpoints`], [`load_endpoints_jsonl`]); `cargo run --example gather`
//! shows the whole thing.
//!
// The link only where the stub is built: `cargo doc --no-default-features` documents
// the client alone.
#![cfg_attr(
    feature = "stub",
    doc = "The examples here start a [`stub::Stub`], the sleeping test server, which needs the"
)]
#![cfg_attr(
    not(feature = "stub"),
    doc = "The examples here start a `stub::Stub`, the sleeping test server, which needs the"
)]
//! default feature `stub`; an application that only makes calls can turn it off.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod batch;
mod client;
mod config;
mod endpoint;
mod error;
mod headers;
mod hedge;
mod phase;
mod redirect;
mod report;
mod retry;
#[cfg(feature = "stub")]
#[cfg_attr(docsrs, doc(cfg(feature = "stub")))]
pub mod stub;
mod svg;
mod transport;

pub use batch::{Batch, FailFast};
pub use client::{
    BuildError, Client, ClientBuilder, DEFAULT_BODY_LIMIT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_IDLE_PER_ORIGIN, DEFAULT_USER_AGENT,
};
pub use config::{
    load_endpoints, load_endpoints_jsonl, parse_endpoint_line, parse_endpoints, LoadError,
};
pub use endpoint::{BodyFormat, Endpoint, DEFAULT_CONTENT_TYPE, DEFAULT_TIMEOUT};
pub use error::{Error, ErrorKind};
pub use headers::Headers;
pub use hedge::{HedgeDelay, HedgePolicy, ADAPTIVE_MARGIN};
pub use phase::{Phase, Timeline};
pub use redirect::DEFAULT_REDIRECTS;
pub use report::{Outcome, Reply, Report, Summary};
pub use retry::{RetryBudget, RetryPolicy, TRANSIENT_STATUSES};
pub use surf::http::Method;
pub use surf::Url;
pub use svg::TIMELINE_MAX_BARS;

// The README's code must compile too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
