//! A batch of calls and its controls: results as they land, a deadline for the whole
//! batch, and fail-fast. `Client::gather` is a batch with no controls, collected in
//! input order.

use std::borrow::Borrow;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{self, Either, FutureExt, Shared};
use futures::stream::{self, Stream, StreamExt};

use tracing::Instrument;

use crate::client::{call_span, Client};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind};
use crate::phase::Progress;
use crate::report::{Outcome, Report};

/// Which failures stop a fail-fast batch (see [`Batch::fail_fast`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailFast {
    /// An error of any kind (no reply, or a body that could not be read).
    OnError,
    /// An error, or a reply whose status is not 2xx.
    OnErrorOrStatus,
}

impl FailFast {
    fn stops_at(self, outcome: &Outcome) -> bool {
        match (&outcome.result, self) {
            (Err(err), _) => err.kind() != ErrorKind::Cancelled,
            (Ok(reply), FailFast::OnErrorOrStatus) => !(200..300).contains(&reply.status),
            (Ok(_), FailFast::OnError) => false,
        }
    }
}

/// Why a call was stopped from outside, by its batch.
#[derive(Debug, Clone)]
pub(crate) enum Interrupt {
    /// The batch deadline, of this length, passed.
    Deadline(Duration),
    /// The named endpoint failed first in a fail-fast batch.
    FailedFirst(String),
}

impl Interrupt {
    /// The error of a call that never started because of this.
    fn before_start(&self, name: &str) -> Error {
        let message = match self {
            Interrupt::Deadline(d) => format!(
                "cancelled: the batch deadline of {} passed before the call started",
                crate::phase::seconds(*d)
            ),
            Interrupt::FailedFirst(first) => format!("cancelled: `{first}` failed first"),
        };
        Error::new(ErrorKind::Cancelled, name, message)
    }
}

/// A batch of calls on one client, with the controls that apply to the whole batch.
/// Made by [`Client::batch`]; [`Client::gather`] and [`Client::gather_stream`] are a
/// batch with none set.
///
/// Whatever stops it, a batch gives exactly one outcome per endpoint: calls in flight
/// when the deadline passes end as `timeout` (saying the batch deadline cut them),
/// calls it stops before they start end as `cancelled`.
///
/// # Examples
///
#[cfg_attr(feature = "stub", doc = "```")]
#[cfg_attr(not(feature = "stub"), doc = "```ignore")]
/// # fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use fanout::{Client, Endpoint, ErrorKind, stub::Stub};
/// use serde_json::json;
///
/// let stub = Stub::start_local()?;
/// let endpoints = [
///     Endpoint::post("quick", stub.url()).json(json!({"sleep_time": 0})),
///     Endpoint::post("slow", stub.url()).json(json!({"sleep_time": 5})),
/// ];
/// let client = Client::new();
/// let batch = client.batch().deadline(Duration::from_millis(500));
/// let report = futures::executor::block_on(batch.gather(&endpoints));
/// assert_eq!(report.outcomes[0].reply().map(|r| r.status), Some(200));
/// assert_eq!(report.outcomes[1].error().map(|e| e.kind()), Some(ErrorKind::Timeout));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a batch does nothing until `gather`, `stream` or `stream_from` runs it"]
pub struct Batch<'c> {
    client: &'c Client,
    deadline: Option<Duration>,
    fail_fast: Option<FailFast>,
}

impl<'c> Batch<'c> {
    pub(crate) fn new(client: &'c Client) -> Self {
        Batch {
            client,
            deadline: None,
            fail_fast: None,
        }
    }

    /// A deadline for the whole batch, counted from when it starts: calls still in
    /// flight when it passes end as `timeout` with a message saying the batch deadline
    /// cut them; calls not started by then end as `cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// let client = Client::new();
    /// // A deadline that has passed before any call starts.
    /// let batch = client.batch().deadline(Duration::ZERO);
    /// let report = futures::executor::block_on(batch.gather(&[Endpoint::get("late", "http://127.0.0.1:1/")]));
    /// let err = report.outcomes[0].error().expect("cancelled");
    /// assert_eq!(err.kind(), ErrorKind::Cancelled);
    /// assert_eq!(err.message(), "cancelled: the batch deadline of 0 s passed before the call started");
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Stops the batch at the first failure `on` names, as Python's `TaskGroup` and
    /// Go's `errgroup` do: calls in flight are dropped (their connections closed) and
    /// they and the calls not yet started end as `cancelled`, naming the endpoint that
    /// failed first. The report still holds every endpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind, FailFast};
    ///
    /// // One call at a time: the first fails before the second runs.
    /// let client = Client::builder().concurrency(1).build().expect("valid settings");
    /// let endpoints = [
    ///     Endpoint::post("bad", "gopher://a/"),
    ///     Endpoint::get("next", "http://127.0.0.1:1/"),
    /// ];
    /// let batch = client.batch().fail_fast(FailFast::OnError);
    /// let report = futures::executor::block_on(batch.gather(&endpoints));
    /// assert_eq!(report.outcomes[0].error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// let next = report.outcomes[1].error().expect("cancelled");
    /// assert!(next.is_cancelled() && next.message().ends_with("`bad` failed first"));
    /// ```
    pub fn fail_fast(mut self, on: FailFast) -> Self {
        self.fail_fast = Some(on);
        self
    }

    /// Runs the batch and collects one outcome per endpoint, in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::new();
    /// let endpoints = [Endpoint::get("down", "http://127.0.0.1:1/"), Endpoint::post("bad", "gopher://a/")];
    /// let report = futures::executor::block_on(client.batch().gather(&endpoints));
    /// let names: Vec<&str> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    /// assert_eq!(names, ["down", "bad"]); // input order, whichever finished first
    /// ```
    pub async fn gather(self, endpoints: &[Endpoint]) -> Report {
        let started = Instant::now();
        let mut slots: Vec<Option<Outcome>> = Vec::new();
        slots.resize_with(endpoints.len(), || None);
        let mut landed = self.stream(endpoints);
        while let Some((index, outcome)) = landed.next().await {
            slots[index] = Some(outcome);
        }
        Report {
            // Every index comes exactly once: the stream gives one outcome per endpoint.
            outcomes: slots.into_iter().flatten().collect(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs the batch and yields each outcome as it lands, with its endpoint's index in
    /// the input; see [`Client::gather_stream`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::new();
    /// let endpoints = [Endpoint::get("down", "http://127.0.0.1:1/"), Endpoint::post("bad", "gopher://a/")];
    /// let mut landed: Vec<(usize, String)> = futures::executor::block_on(
    ///     client.batch().stream(&endpoints).map(|(i, o)| (i, o.name)).collect(),
    /// );
    /// landed.sort(); // they came as they landed
    /// assert_eq!(landed, [(0, "down".to_owned()), (1, "bad".to_owned())]);
    /// ```
    pub fn stream<I>(self, endpoints: I) -> impl Stream<Item = (usize, Outcome)> + 'c
    where
        I: IntoIterator,
        I::IntoIter: 'c,
        I::Item: Borrow<Endpoint> + 'c,
    {
        self.stream_from(stream::iter(endpoints))
    }

    /// As [`stream`](Self::stream), for endpoints that come from a stream: the next is
    /// pulled only when a call's slot is free (with [`ClientBuilder::concurrency`] set),
    /// so an endless source runs in bounded memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::builder().concurrency(2).build().expect("valid settings");
    /// // An endless stream of endpoints, of which the first 5 are taken.
    /// let endpoints = futures::stream::iter(0..).map(|n| Endpoint::post(format!("e{n}"), "gopher://a/"));
    /// let landed: Vec<_> = futures::executor::block_on(client.batch().stream_from(endpoints).take(5).collect());
    /// assert_eq!(landed.len(), 5);
    /// ```
    ///
    /// [`ClientBuilder::concurrency`]: crate::ClientBuilder::concurrency
    pub fn stream_from<S>(self, endpoints: S) -> impl Stream<Item = (usize, Outcome)> + 'c
    where
        S: Stream + 'c,
        S::Item: Borrow<Endpoint> + 'c,
    {
        let client = self.client;
        let slots = client.concurrency().map_or(usize::MAX, NonZeroUsize::get);
        let controls = Arc::new(Controls::new(self.deadline, self.fail_fast, slots));
        endpoints
            .enumerate()
            .map(move |(index, endpoint)| {
                let controls = controls.clone();
                async move { (index, controls.run(client, endpoint.borrow()).await) }
            })
            .buffer_unordered(slots)
    }
}

/// The controls of one running batch, shared by its calls.
#[derive(Debug)]
struct Controls {
    /// When the batch started, set when its stream is first polled (not when it was
    /// made): the origin of its calls' timelines and of its deadline.
    started: OnceLock<Instant>,
    /// Whether calls wait for a slot (a concurrency limit is set).
    limited: bool,
    /// The batch's span, the parent of its calls'.
    span: tracing::Span,
    deadline: Option<Duration>,
    fail_fast: Option<FailFast>,
    /// The endpoint that failed first, for calls yet to start: read directly, since
    /// a shared receiver says nothing until one of its clones has been polled.
    failed_first: OnceLock<String>,
    /// Fired once, with the name of the endpoint that failed first, for calls in flight.
    stop: Mutex<Option<oneshot::Sender<String>>>,
    stopped: Shared<oneshot::Receiver<String>>,
}

impl Controls {
    fn new(deadline: Option<Duration>, fail_fast: Option<FailFast>, slots: usize) -> Self {
        let (stop, stopped) = oneshot::channel();
        let span = tracing::info_span!(
            "batch",
            concurrency = (slots != usize::MAX).then_some(slots),
            deadline_ms = deadline.map(|d| d.as_secs_f64() * 1000.0),
            fail_fast = fail_fast.is_some(),
        );
        Controls {
            started: OnceLock::new(),
            limited: slots != usize::MAX,
            span,
            deadline,
            fail_fast,
            failed_first: OnceLock::new(),
            stop: Mutex::new(Some(stop)),
            stopped: stopped.shared(),
        }
    }

    fn started(&self) -> Instant {
        *self.started.get_or_init(Instant::now)
    }

    /// When the deadline passes, and how long it was; `None` without one (or with one
    /// too far off to count to).
    fn deadline_at(&self) -> Option<(Instant, Duration)> {
        let d = self.deadline?;
        Some((self.started().checked_add(d)?, d))
    }

    /// What stops a call before it starts, if anything does.
    fn stopped_already(&self) -> Option<Interrupt> {
        if let Some(first) = self.failed_first.get() {
            return Some(Interrupt::FailedFirst(first.clone()));
        }
        match self.deadline_at() {
            Some((at, d)) if Instant::now() >= at => Some(Interrupt::Deadline(d)),
            _ => None,
        }
    }

    /// Resolves when the batch stops its calls in flight: its deadline passes or a
    /// call fails first; never, when neither control is set.
    fn stopping(&self) -> impl Future<Output = Interrupt> + Send + 'static {
        let stopped = self.stopped.clone().map(|first| match first {
            Ok(first) => Interrupt::FailedFirst(first),
            // The sender lives as long as the batch: never dropped while it runs.
            Err(_) => Interrupt::FailedFirst(String::new()),
        });
        let Some((at, d)) = self.deadline_at() else {
            return stopped.left_future();
        };
        let timer = FutureExt::map(async_io::Timer::at(at), move |_| Interrupt::Deadline(d));
        future::select(stopped, timer)
            .map(|either| match either {
                Either::Left((interrupt, _)) | Either::Right((interrupt, _)) => interrupt,
            })
            .right_future()
    }

    /// One call of the batch, under its controls.
    async fn run(&self, client: &Client, endpoint: &Endpoint) -> Outcome {
        let started = self.started();
        if let Some(interrupt) = self.stopped_already() {
            return Outcome {
                name: endpoint.name().to_owned(),
                result: Err(interrupt.before_start(endpoint.name())),
                elapsed: Duration::ZERO,
                attempts: 0,
                hedged: false,
                hedges: 0,
                hedge_won: false,
                timeline: Progress::since(started, self.limited).timeline(),
            };
        }
        let span = call_span(&self.span, endpoint);
        let batch = (started, self.limited);
        // Without controls nothing can stop a call: no stop signal to poll at each wake.
        let outcome = if self.deadline.is_none() && self.fail_fast.is_none() {
            let never = future::pending::<Interrupt>();
            client
                .call_until(endpoint, batch, never)
                .instrument(span)
                .await
        } else {
            // Boxed: inline, the stop signal and deadline timer made each call's future
            // over 1 KiB, past glibc's per-thread cache (see `Client::exchange`).
            let stopping = Box::pin(self.stopping());
            client
                .call_until(endpoint, batch, stopping)
                .instrument(span)
                .await
        };
        if self.fail_fast.is_some_and(|on| on.stops_at(&outcome)) {
            let stop = self
                .stop
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(stop) = stop {
                let _ = self.failed_first.set(endpoint.name().to_owned());
                let _ = stop.send(endpoint.name().to_owned());
            }
        }
        outcome
    }
}
