//! The client: one surf client on our transport, the request each endpoint becomes,
//! redirects followed, and `gather`, which runs a batch of calls.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use std::borrow::Borrow;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use futures::future::{self, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::Stream;
use surf::http::Request;
use surf::Url;
use tracing::Instrument;

use crate::batch::{Batch, Interrupt};
use crate::endpoint::{BodyFormat, Endpoint};
use crate::error::{Error, ErrorKind};
use crate::headers;
use crate::hedge::{HedgePolicy, Hedging};
use crate::phase::{Phase, Progress};
use crate::redirect::{self, Hop, DEFAULT_REDIRECTS};
use crate::report::{Outcome, Reply, Report};
use crate::retry::{self, Jitter, RetryBudget, RetryPolicy};
use crate::transport::{
    self as transport, Certificate, Outgoing, RawReply, Replay, Settings, Transport,
    TransportError, ACCEPT_ENCODING, DEFAULT_MAX_HEAD_BYTES,
};

/// What a call's attempts came to, as they go: kept outside the call's future so that a
/// batch that cuts the call short still reports them.
#[derive(Debug, Default)]
struct Tally {
    attempts: AtomicU32,
    hedges: AtomicU32,
    hedge_won: AtomicBool,
}

/// The largest response body read by default: 16 MiB, counted after decompression.
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// How long after its last use an idle connection may be reused, by default: 90 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many idle connections are kept per origin by default.
pub const DEFAULT_MAX_IDLE_PER_ORIGIN: usize = 32;

/// The `User-Agent` sent unless the client or the endpoint sets another.
pub const DEFAULT_USER_AGENT: &str = concat!("fanout/", env!("CARGO_PKG_VERSION"));

/// Makes HTTP calls and gathers batches of them.
///
/// A `Client` owns one `surf::Client` and its pool of keep-alive connections; cloning is
/// cheap and shares both, so make one and reuse it across batches.
///
/// Every request carries `User-Agent: fanout/<version>`, an `Accept` for the
/// endpoint's [`BodyFormat`] (`application/json` by default) and, while decompression
/// is on, `Accept-Encoding: gzip, deflate, br`; the client's
/// [default headers](ClientBuilder::default_header) and the endpoint's own replace them
/// by name. Redirects are followed (at most 10 by default, see
/// [`ClientBuilder::redirects`]) and compressed bodies are decompressed.
///
/// # Examples
///
/// With no server at hand, a call still ends in exactly one outcome:
///
/// ```
/// use fanout::{Client, Endpoint, ErrorKind};
///
/// let client = Client::new();
/// let endpoint = Endpoint::get("nowhere", "http://127.0.0.1:1/");
/// let outcome = futures::executor::block_on(client.call(&endpoint));
/// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::Connect));
/// ```
///
/// Against a stub server (the default feature `stub`):
///
#[cfg_attr(feature = "stub", doc = "```")]
#[cfg_attr(not(feature = "stub"), doc = "```ignore")]
/// # fn main() -> std::io::Result<()> {
/// use fanout::{Client, Endpoint, stub::Stub};
/// use serde_json::json;
///
/// let stub = Stub::start_local()?;
/// let client = Client::new();
/// let endpoint = Endpoint::post("echo", stub.url()).json(json!({"sleep_time": 0}));
/// let outcome = futures::executor::block_on(client.call(&endpoint));
/// assert_eq!(outcome.reply().map(|r| r.status), Some(200));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    http: surf::Client,
    concurrency: Option<NonZeroUsize>,
    retry: Option<RetryPolicy>,
    retry_budget: Arc<RetryBudget>,
    jitter: Arc<Jitter>,
    hedging: Option<Arc<Hedging>>,
    redirects: usize,
    /// The headers every request starts from, before the endpoint's own.
    default_headers: Arc<Vec<(String, String)>>,
    decompress: bool,
    /// What each request is cloned from, the first one made: `Request::new` makes a
    /// trailers channel (an aligned allocation, 600 instructions in callgrind) that
    /// nothing here uses, and a clone makes none.
    blank_request: Arc<OnceLock<Request>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("concurrency", &self.concurrency)
            .field("redirects", &self.redirects)
            .field("default_headers", &self.default_headers)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client with the defaults: every call of a batch at once, a 16 MiB body limit,
    /// up to 10 redirects followed, bodies decompressed, up to 32 idle connections per
    /// origin reused for up to 90 s, the system's trusted roots.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// let client = Client::new();
    /// let again = client.clone(); // shares the connections
    /// let outcome = futures::executor::block_on(again.call(&Endpoint::post("bad", "gopher://a/")));
    /// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// ```
    pub fn new() -> Self {
        ClientBuilder::new().build_with(Vec::new())
    }

    /// A builder for a client with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = fanout::Client::builder()
    ///     .concurrency(50)
    ///     .connect_timeout(Duration::from_secs(2))
    ///     .build();
    /// assert!(client.is_ok());
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Calls every endpoint at once and waits for all of them.
    ///
    /// Each call runs under its endpoint's own timeout, which covers everything from
    /// waiting for a connection to reading the last byte of the body, redirects
    /// included. A call that fails never cancels, aborts or delays the others (for a
    /// batch that stops at the first failure, or by a deadline, see [`batch`](Self::batch)).
    ///
    /// **Order:** the report holds exactly one outcome per endpoint, in the order given,
    /// whatever order the calls finish in. Duplicate names are kept, each with its own
    /// outcome.
    ///
    /// **Cancellation:** dropping the returned future cancels every call still in flight
    /// and closes their connections.
    ///
    /// **Cost:** one future per call in flight, polled by a single `FuturesUnordered`
    /// (as `buffer_unordered` does), so no task is spawned and no runtime is required (a
    /// host name is resolved on async-std's blocking thread pool, which starts itself);
    /// one connection per call in flight (idle ones are reused); bodies are read into
    /// one buffer each, up to the body limit. With [`ClientBuilder::concurrency`] set, at
    /// most that many calls are in flight, and a call's timeout starts when it gets its
    /// turn, not while it waits.
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, ErrorKind, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoints = [
    ///     Endpoint::post("second", stub.url()).json(json!({"sleep_time": 0.2})),
    ///     Endpoint::post("first", stub.url()).json(json!({"sleep_time": 0})),
    ///     Endpoint::post("broken", "http://127.0.0.1:99999/api"),
    /// ];
    /// let report = futures::executor::block_on(Client::new().gather(&endpoints));
    /// let names: Vec<_> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    /// assert_eq!(names, ["second", "first", "broken"]); // input order, not finishing order
    /// assert_eq!(report.outcomes[2].error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// # Ok(()) }
    /// ```
    pub async fn gather(&self, endpoints: &[Endpoint]) -> Report {
        self.batch().gather(endpoints).await
    }

    /// Calls the endpoints and yields each outcome as it lands, with the index of its
    /// endpoint in the input, like Python's `asyncio.as_completed`.
    ///
    /// It makes the promises [`gather`](Self::gather) makes: exactly one outcome per
    /// endpoint, each call under its own timeout, the concurrency limit honoured. It
    /// takes endpoints owned or borrowed, from any iterator; the next endpoint is taken
    /// only when a call's slot is free, so with a concurrency limit an endless iterator
    /// runs in bounded memory (for a `Stream` of endpoints, see
    /// [`Batch::stream_from`]).
    ///
    /// **Order:** as the calls finish. **Cancellation:** dropping the stream cancels
    /// the calls in flight and closes their connections; endpoints not yet taken are
    /// never called.
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use futures::StreamExt;
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoints = vec![
    ///     Endpoint::post("slow", stub.url()).json(json!({"sleep_time": 0.3})),
    ///     Endpoint::post("fast", stub.url()).json(json!({"sleep_time": 0})),
    /// ];
    /// let client = Client::new();
    /// let landed: Vec<(usize, String)> = futures::executor::block_on(
    ///     client.gather_stream(endpoints).map(|(i, o)| (i, o.name)).collect(),
    /// );
    /// assert_eq!(landed, [(1, "fast".to_owned()), (0, "slow".to_owned())]);
    /// # Ok(()) }
    /// ```
    pub fn gather_stream<'c, I>(&'c self, endpoints: I) -> impl Stream<Item = (usize, Outcome)> + 'c
    where
        I: IntoIterator,
        I::IntoIter: 'c,
        I::Item: Borrow<Endpoint> + 'c,
    {
        self.batch().stream(endpoints)
    }

    /// A batch on this client, to set a deadline for the whole batch or fail-fast
    /// before running it; see [`Batch`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::new();
    /// let endpoints = [Endpoint::post("a", "gopher://a/"), Endpoint::post("b", "ftp://b/")];
    /// let batch = client.batch().deadline(Duration::from_secs(10));
    /// let report = futures::executor::block_on(batch.gather(&endpoints));
    /// let names: Vec<&str> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// The most calls of a batch in flight at once, if limited.
    pub(crate) fn concurrency(&self) -> Option<NonZeroUsize> {
        self.concurrency
    }

    /// Makes one call under the endpoint's timeout, following redirects.
    ///
    /// Like [`gather`](Self::gather), it always ends in one outcome: the reply, or the
    /// error that kept it from coming. An endpoint that cannot be sent
    /// ([`Endpoint::problem`]) ends at once, without a byte sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// let client = Client::new();
    /// let outcome = futures::executor::block_on(client.call(&Endpoint::post("bad", "gopher://a/")));
    /// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::InvalidEndpoint));
    /// assert_eq!(outcome.attempts, 0);
    /// ```
    pub async fn call(&self, endpoint: &Endpoint) -> Outcome {
        let span = call_span(&tracing::Span::current(), endpoint);
        self.call_until(endpoint, (Instant::now(), false), future::pending())
            .instrument(span)
            .await
    }

    /// Makes one call of a batch that started at `batch.0` (whose calls wait for a
    /// slot: `batch.1`), which `interrupt` may cut short on the batch's behalf. The
    /// caller instruments it with its [`call_span`].
    pub(crate) async fn call_until(
        &self,
        endpoint: &Endpoint,
        batch: (Instant, bool),
        interrupt: impl Future<Output = Interrupt>,
    ) -> Outcome {
        let started = Instant::now();
        let name = endpoint.name();
        let tally = Tally::default();
        let progress = Arc::new(Progress::since(batch.0, batch.1));
        let result = match endpoint.target() {
            Err(problem) => Err(Error::new(ErrorKind::InvalidEndpoint, name, problem)),
            Ok(url) => {
                let call = self.attempts(endpoint, url, &progress, &tally);
                let (call, interrupt) = (pin!(call), pin!(interrupt));
                match future::select(call, interrupt).await {
                    Either::Left((result, _)) => result,
                    Either::Right((Interrupt::Deadline(deadline), _)) => Err(Error::new(
                        ErrorKind::Timeout,
                        name,
                        progress.phase().cut_by_deadline(deadline),
                    )),
                    Either::Right((Interrupt::FailedFirst(first), _)) => Err(Error::new(
                        ErrorKind::Cancelled,
                        name,
                        format!("cancelled in flight: `{first}` failed first"),
                    )),
                }
            }
        };
        let outcome = Outcome {
            name: name.to_owned(),
            result,
            elapsed: started.elapsed(),
            attempts: tally.attempts.load(Ordering::Relaxed),
            hedged: tally.hedges.load(Ordering::Relaxed) > 0,
            hedges: tally.hedges.load(Ordering::Relaxed),
            hedge_won: tally.hedge_won.load(Ordering::Relaxed),
            timeline: progress.timeline(),
        };
        match &outcome.result {
            Ok(reply) => tracing::info!(
                status = reply.status,
                attempts = outcome.attempts,
                elapsed_ms = ms(outcome.elapsed),
                "replied"
            ),
            Err(err) => tracing::info!(
                kind = err.kind().as_str(),
                attempts = outcome.attempts,
                elapsed_ms = ms(outcome.elapsed),
                error = err.message(),
                "failed"
            ),
        }
        outcome
    }

    /// The call's attempts: one, or as many as its retry policy allows, all within the
    /// endpoint's timeout.
    async fn attempts(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        progress: &Arc<Progress>,
        tally: &Tally,
    ) -> Result<Reply, Error> {
        let name = endpoint.name();
        let policy = endpoint.retry_policy().or(self.retry.as_ref());
        let idempotent = endpoint.is_idempotent();
        // `None`: a limit too far off to count to (`Duration::MAX`): no limit at all.
        let budget_ends = Instant::now().checked_add(endpoint.time_limit());
        if policy.is_some() {
            self.retry_budget.deposit();
        }
        let mut earlier: Vec<String> = Vec::new();
        loop {
            let attempt_started = Instant::now();
            let left = budget_ends.map_or(Duration::MAX, |end| {
                end.saturating_duration_since(attempt_started)
            });
            let limit = policy
                .and_then(RetryPolicy::attempt_limit)
                .map_or(left, |l| l.min(left));
            // When what is left of the endpoint's timeout cut the attempt, the message
            // names that timeout, not the sliver of it the last attempt had.
            let said_limit = if limit == left {
                endpoint.time_limit()
            } else {
                limit
            };
            let attempt = tally.attempts.fetch_add(1, Ordering::Relaxed) + 1;
            if attempt > 1 {
                tracing::Span::current().record("attempt", attempt);
            }
            progress.next_attempt(Phase::Connecting);
            // Boxed: an attempt's state is most of a call's, and inline it was held
            // twice over (rustc keeps the future passed to `timeout` beside the timeout
            // that owns it): a 3.5 KB future per call, moved again at every level (6% of
            // the client's time in memmove) and 17 MB for 5,000 calls in flight.
            let attempt_call = Box::pin(self.hedged(endpoint, url, progress, tally));
            let result = async_std::future::timeout(limit, attempt_call)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Timeout,
                        name,
                        progress.phase().timed_out(said_limit),
                    ))
                });
            let Some(policy) = policy else {
                return result;
            };
            let again = match &result {
                Ok(reply) => policy.retries_status(reply.status, idempotent),
                Err(err) => policy.retries_error(err, idempotent),
            };
            let retry_after = match &result {
                Ok(reply) if again => retry::retry_after(&reply.headers),
                _ => None,
            };
            let wait = policy.wait(attempt, retry_after, &self.jitter);
            // Another attempt needs its wait and the time an attempt takes: its limit,
            // or, without one, as long as this one took.
            let needed =
                wait.saturating_add(policy.attempt_limit().unwrap_or(attempt_started.elapsed()));
            let fits = budget_ends.is_none_or(|end| {
                Instant::now()
                    .checked_add(needed)
                    .is_some_and(|then| then <= end)
            });
            if !again || attempt >= policy.max_attempts() || !fits || !self.retry_budget.withdraw()
            {
                return result.map_err(|e| e.after_attempts(&earlier));
            }
            earlier.push(match &result {
                Ok(reply) => format!("status {}", reply.status),
                Err(err) => err.message().to_owned(),
            });
            tracing::debug!(
                attempt,
                wait_ms = ms(wait),
                cause = earlier.last().map(String::as_str),
                "retrying"
            );
            progress.next_attempt(Phase::Backoff);
            async_io::Timer::after(wait).await;
        }
    }

    /// One attempt, hedged when the client hedges and the endpoint is idempotent: after
    /// the hedge delay without a reply another copy goes out on another connection, and
    /// the first reply wins; the copies still running are dropped, closing their
    /// connections.
    async fn hedged(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        progress: &Arc<Progress>,
        tally: &Tally,
    ) -> Result<Reply, Error> {
        let Some(hedging) = self.hedging.as_deref().filter(|_| endpoint.is_idempotent()) else {
            return self.exchange(endpoint, url, progress).await;
        };
        // Only an adaptive delay looks latencies up by origin.
        let origin = hedging
            .is_adaptive()
            .then(|| url.origin().ascii_serialization());
        hedging.first_copy_sent();
        let delay = hedging.delay(origin.as_deref());
        let started = Instant::now();
        let copy = |n: u32| async move { (n, self.exchange(endpoint, url, progress).await) };
        let mut copies = FuturesUnordered::new();
        copies.push(copy(0));
        let mut hedges = 0;
        let mut hedge_due = delay.map(async_io::Timer::after);
        let mut first_error = None;
        loop {
            let due = match &mut hedge_due {
                Some(timer) => Either::Left(timer),
                None => Either::Right(future::pending()),
            };
            let landed = match future::select(copies.next(), due).await {
                Either::Left((landed, _)) => landed,
                Either::Right(_) => {
                    hedge_due = None;
                    if hedges < hedging.max_hedges() && hedging.allow() {
                        hedges += 1;
                        copies.push(copy(hedges));
                        tally.hedges.fetch_add(1, Ordering::Relaxed);
                        progress.hedge_sent();
                        tracing::debug!(hedge = hedges, "no reply yet: hedge sent");
                        if hedges < hedging.max_hedges() {
                            hedge_due = delay.map(async_io::Timer::after);
                        }
                    }
                    continue;
                }
            };
            match landed {
                Some((n, Ok(reply))) => {
                    // The call's latency, from its first copy: what the next delay
                    // should be measured against, hedged or not.
                    if let Some(origin) = &origin {
                        hedging.record(origin, started.elapsed());
                    }
                    tally.hedge_won.store(n > 0, Ordering::Relaxed);
                    return Ok(reply);
                }
                Some((_, Err(err))) => {
                    // The first failure is the one reported, unless another copy replies.
                    let err = first_error.unwrap_or(err);
                    if copies.is_empty() {
                        // No copy left, and no hedge worth waiting for after a failure.
                        return Err(err);
                    }
                    first_error = Some(err);
                }
                None => {
                    return Err(first_error.unwrap_or_else(|| {
                        Error::new(
                            ErrorKind::Protocol,
                            endpoint.name(),
                            "no copy of the request ran",
                        )
                    }))
                }
            }
        }
    }

    /// Sends the request to `url` (the endpoint's), follows redirects and reads the final
    /// reply; `progress` tells a timeout which phase it cut short.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        progress: &Arc<Progress>,
    ) -> Result<Reply, Error> {
        let name = endpoint.name();
        let body = endpoint
            .body_bytes()
            .map_err(|problem| Error::new(ErrorKind::InvalidEndpoint, name, problem))?;
        let mut hop = Hop::first(url.clone(), endpoint.method());
        let mut visited: Vec<(surf::http::Method, Url)> = Vec::new();
        loop {
            let req = self.request_for(endpoint, &hop, body.as_deref(), progress);
            // Boxed where it is made: surf's future holds its request twice over (870
            // bytes), and inline it made each attempt's boxed future 1,160 bytes, over
            // what glibc's allocator serves from its per-thread cache (callgrind: 600
            // instructions a call more in `malloc`, and the bytes copied again).
            let res = Box::pin(self.http.send(req)).await.map_err(|e| {
                let err = classify(name, e);
                // After a redirect the server has acted on the first request: what fails
                // later may not be sent again from the start, whatever its own cause.
                if visited.is_empty() {
                    err
                } else {
                    err.with_replay(Replay::Unknown)
                }
            })?;
            let mut res: surf::http::Response = res.into();
            let raw = res.ext_mut().remove::<RawReply>().ok_or_else(|| {
                Error::new(ErrorKind::Protocol, name, "the transport gave no reply")
            })?;
            if self.redirects == 0 {
                return reply(name, endpoint.format(), raw, hop.url);
            }
            let next = hop
                .next(raw.status, raw.headers.get_bytes("location"))
                .map_err(|problem| Error::new(ErrorKind::Redirect, name, problem))?;
            let Some(next) = next else {
                return reply(name, endpoint.format(), raw, hop.url);
            };
            visited.push((hop.method, hop.url));
            let hops = visited.len();
            if visited
                .iter()
                .any(|(method, url)| *method == next.method && *url == next.url)
            {
                return Err(Error::new(
                    ErrorKind::Redirect,
                    name,
                    format!(
                        "redirect loop: after {hops} redirects, `{}` again",
                        next.url
                    ),
                ));
            }
            if hops > self.redirects {
                return Err(Error::new(
                    ErrorKind::Redirect,
                    name,
                    format!(
                        "more than {} redirects (the last to `{}`)",
                        self.redirects, next.url
                    ),
                ));
            }
            tracing::debug!(status = raw.status, to = %next.url, hop = hops, "following a redirect");
            progress.enter(Phase::Connecting);
            hop = next;
        }
    }

    /// The surf request for one hop of an endpoint's call, its bytes on the wire carried
    /// with it: the default headers, the client's and the endpoint's own over them by
    /// name, and the body where it goes.
    fn request_for(
        &self,
        endpoint: &Endpoint,
        hop: &Hop,
        body: Option<&[u8]>,
        progress: &Arc<Progress>,
    ) -> Request {
        let layers = [self.default_headers.as_slice(), endpoint.headers()];
        let set_by_caller = |name: &str| {
            layers
                .iter()
                .flat_map(|layer| layer.iter())
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let accept_encoding = self.decompress.then_some(ACCEPT_ENCODING);
        let defaults = [
            ("user-agent", Some(DEFAULT_USER_AGENT)),
            ("accept", Some(endpoint.format().accept())),
            ("accept-encoding", accept_encoding),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .filter(|(name, _)| !set_by_caller(name));
        // The client's defaults, unless the endpoint sets the same name, then the
        // endpoint's own; credentials only while the redirects stay on the origin.
        let (client, own) = (layers[0], layers[1]);
        let fields = client
            .iter()
            .filter(|(name, _)| !own.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .chain(own)
            .filter(|(name, _)| hop.with_credentials || !redirect::is_credential(name))
            .map(|(name, value)| (name.as_str(), value.as_str()));
        let body = body.filter(|_| hop.with_body);
        let content_type = body.map(|_| ("content-type", endpoint.media_type()));
        let bytes = transport::encode(
            hop.method,
            &hop.url,
            defaults.chain(fields).chain(content_type),
            body,
        );
        let blank = self
            .blank_request
            .get_or_init(|| Request::new(hop.method, hop.url.clone()));
        let mut req = blank.clone();
        req.set_method(hop.method);
        *req.url_mut() = hop.url.clone();
        req.ext_mut().insert(Outgoing {
            progress: progress.clone(),
            bytes,
        });
        req
    }
}

/// The span of one call: the endpoint, method and origin, and the attempt once it is
/// retried. Each call's future is instrumented with its own, so its events land in it
/// although one task polls every call of a batch.
pub(crate) fn call_span(parent: &tracing::Span, endpoint: &Endpoint) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "call",
        endpoint = endpoint.name(),
        method = %endpoint.method(),
        origin = %OriginOf(endpoint.url()),
        attempt = tracing::field::Empty,
    )
}

/// A URL's origin (`https://host:port`) written only when a subscriber records it: with
/// none, a call's span costs no string.
struct OriginOf<'a>(Option<&'a Url>);

impl fmt::Display for OriginOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(url) => f.write_str(&url.origin().ascii_serialization()),
            None => f.write_str("-"),
        }
    }
}

/// Milliseconds, for events.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The final reply, its body read as the endpoint expects.
fn reply(name: &str, format: BodyFormat, raw: RawReply, url: Url) -> Result<Reply, Error> {
    let RawReply {
        status,
        headers,
        body: bytes,
    } = raw;
    let body = match format {
        BodyFormat::Bytes => serde_json::Value::Null,
        BodyFormat::Text => String::from_utf8_lossy(&bytes).into_owned().into(),
        BodyFormat::Json if bytes.is_empty() => serde_json::Value::Null,
        BodyFormat::Json => match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Decode,
                    name,
                    format!("the body is not JSON ({e})"),
                )
                .with_status(status)
                .with_body(bytes))
            }
        },
    };
    Ok(Reply::new(status, body, headers, url, bytes))
}

/// The transport's error, kind and cause as it decided them; surf adds no errors of its
/// own on the way (no middleware is installed).
fn classify(name: &str, err: surf::Error) -> Error {
    let err: surf::http::Error = err;
    match err.downcast::<TransportError>() {
        Ok(t) => {
            let err = Error::new(t.kind, name, t.message)
                .with_source(t.source)
                .with_replay(t.replay);
            match t.status {
                Some(status) => err.with_status(status),
                None => err,
            }
        }
        Err(other) => Error::new(
            ErrorKind::Protocol,
            name,
            format!("the request failed ({other})"),
        ),
    }
}

/// Settings for a [`Client`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let client = fanout::Client::builder()
///     .concurrency(100)
///     .body_limit(1024 * 1024)
///     .connect_timeout(Duration::from_secs(2))
///     .default_header("Authorization", "Bearer token")
///     .redirects(3)
///     .build();
/// assert!(client.is_ok());
///
/// let refused = fanout::Client::builder().add_root_certificate(&b"not PEM"[..]).build();
/// assert!(refused.unwrap_err().to_string().starts_with("root certificate #1"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    concurrency: Option<usize>,
    /// Set by [`max_idle_per_origin`](Self::max_idle_per_origin); unset, it follows
    /// the concurrency.
    max_idle_per_origin: Option<usize>,
    root_certificates: Vec<Vec<u8>>,
    default_headers: Vec<(String, String)>,
    redirects: usize,
    retry: Option<RetryPolicy>,
    retry_budget: Option<RetryBudget>,
    jitter_seed: Option<u64>,
    hedge: Option<HedgePolicy>,
    settings: Settings,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// The defaults of [`Client::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::ClientBuilder::new().build().is_ok());
    /// ```
    pub fn new() -> Self {
        ClientBuilder {
            concurrency: None,
            max_idle_per_origin: None,
            root_certificates: Vec::new(),
            default_headers: Vec::new(),
            redirects: DEFAULT_REDIRECTS,
            retry: None,
            retry_budget: None,
            jitter_seed: None,
            hedge: None,
            settings: Settings {
                body_limit: DEFAULT_BODY_LIMIT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_idle_per_origin: DEFAULT_MAX_IDLE_PER_ORIGIN,
                max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
                decompress: true,
                connect_timeout: None,
            },
        }
    }

    /// At most `limit` calls of a batch in flight at once (default: all of them). Results
    /// keep input order; a call's timeout starts when its turn comes. 0 is refused by
    /// [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Client;
    ///
    /// assert!(Client::builder().concurrency(100).build().is_ok());
    /// assert!(Client::builder().concurrency(0).build().is_err());
    /// ```
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// The largest response body read, in bytes (default 16 MiB), counted after
    /// decompression. A larger body ends in `body_too_large` without more than this
    /// ever being held in memory, so a compression bomb costs no more than the limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Client::builder().body_limit(1024 * 1024).build().is_ok());
    /// ```
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.settings.body_limit = bytes;
        self
    }

    /// The largest reply head read, in bytes (default 64 KiB); the number of header
    /// fields is bounded only by it. A longer head is a `protocol` error as soon as
    /// that many bytes came without its end.
    /// 0 is refused by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Client;
    ///
    /// assert!(Client::builder().max_head_bytes(16 * 1024).build().is_ok());
    /// assert!(Client::builder().max_head_bytes(0).build().is_err());
    /// ```
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_head_bytes = bytes;
        self
    }

    /// How many redirects a call follows (default 10); 0 turns following off, and a
    /// 3xx is then a reply like any other. Past the limit, or in a loop, a call ends
    /// in a `redirect` error.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Client::builder().redirects(0).build().is_ok());
    /// ```
    pub fn redirects(mut self, max: usize) -> Self {
        self.redirects = max;
        self
    }

    /// Whether to ask for compressed bodies and decompress them (default: on). Off, no
    /// `Accept-Encoding` is sent and a body comes back as the server sent it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Client::builder().decompress(false).build().is_ok());
    /// ```
    pub fn decompress(mut self, on: bool) -> Self {
        self.settings.decompress = on;
        self
    }

    /// A limit on opening a connection (DNS, TCP and the TLS handshake), inside the
    /// call's own timeout (default: none but the call's). Passed, the call ends in a
    /// `timeout` that says `while connecting`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert!(fanout::Client::builder().connect_timeout(Duration::from_secs(2)).build().is_ok());
    /// ```
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.settings.connect_timeout = Some(limit);
        self
    }

    /// A header sent with every request: it replaces the default of the same name
    /// (`User-Agent`, `Accept`, `Accept-Encoding`), and an endpoint's header of the same
    /// name replaces it. A header that is not valid, or one the transport writes itself
    /// (`Host`, `Content-Length`, …), is refused by [`build`](Self::build).
    /// So is `Content-Type`, which goes with each endpoint's body
    /// ([`Endpoint::content_type`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Client;
    ///
    /// assert!(Client::builder().default_header("Authorization", "Bearer t").build().is_ok());
    /// let refused = Client::builder().default_header("Host", "elsewhere").build();
    /// assert_eq!(
    ///     refused.unwrap_err().to_string(),
    ///     "default header: header `Host` is set by the transport"
    /// );
    /// assert!(Client::builder().default_header("Content-Type", "text/plain").build().is_err());
    /// ```
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.default_headers.push((name.into(), value.into()));
        self
    }

    /// Retries failed calls by `policy` (default: no retries); an endpoint's own policy
    /// ([`Endpoint::retry`]) replaces it. See [`RetryPolicy`] for what is retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, RetryPolicy};
    ///
    /// assert!(Client::builder().retry(RetryPolicy::standard(2)).build().is_ok());
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The share of extra requests retries may add across all this client's calls
    /// (default: [`RetryBudget::default`], 10%), so that when a backend is down a
    /// thousand calls do not each retry it.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, RetryBudget};
    ///
    /// assert!(Client::builder().retry_budget(RetryBudget::new(0.2, 5, 50)).build().is_ok());
    /// ```
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.retry_budget = Some(budget);
        self
    }

    /// Seeds the backoff's jitter, so that waits repeat from run to run (for tests).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Client::builder().jitter_seed(7).build().is_ok());
    /// ```
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Hedges the calls of idempotent endpoints by `policy` (default: no hedging).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, HedgePolicy};
    ///
    /// assert!(Client::builder().hedge(HedgePolicy::adaptive()).build().is_ok());
    /// ```
    pub fn hedge(mut self, policy: HedgePolicy) -> Self {
        self.hedge = Some(policy);
        self
    }

    /// How long after its last use an idle keep-alive connection may still be reused
    /// (default 90 s); older ones are closed when next come across. Zero turns reuse off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert!(fanout::Client::builder().idle_timeout(Duration::from_secs(30)).build().is_ok());
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// How many idle connections are kept per origin (default 32, or the
    /// [`concurrency`](Self::concurrency) if that is higher: a batch that keeps that
    /// many calls in flight to one backend would otherwise close and reopen
    /// connections between its calls). The oldest is closed to make room. Zero turns
    /// reuse off.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Client::builder().max_idle_per_origin(4).build().is_ok());
    /// ```
    pub fn max_idle_per_origin(mut self, max: usize) -> Self {
        self.max_idle_per_origin = Some(max);
        self
    }

    /// Trusts this PEM-encoded certificate as a root, beside the system's roots: for
    /// `https://` backends with a private CA or a self-signed certificate. With rustls
    /// (the default) every certificate in the PEM is trusted; with the `native-tls`
    /// feature, the first.
    /// One that is not valid PEM is refused by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Client;
    ///
    /// // A self-signed certificate, made here with the `rcgen` crate.
    /// let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    /// let pem = made.cert.pem();
    /// assert!(Client::builder().add_root_certificate(pem).build().is_ok());
    /// assert!(Client::builder().add_root_certificate(&b"not PEM"[..]).build().is_err());
    /// ```
    pub fn add_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] when the concurrency or the head limit is 0, a default header is
    /// not valid (or is `Content-Type`), or a root certificate is not valid PEM.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Client;
    ///
    /// assert!(Client::builder().redirects(3).build().is_ok());
    /// let err = Client::builder().concurrency(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "concurrency must be at least 1");
    /// ```
    pub fn build(self) -> Result<Client, BuildError> {
        if self.concurrency == Some(0) {
            return Err(BuildError("concurrency must be at least 1".to_owned()));
        }
        if self.settings.max_head_bytes == 0 {
            return Err(BuildError("max_head_bytes must be at least 1".to_owned()));
        }
        for (name, value) in &self.default_headers {
            headers::check(name, value)
                .map_err(|problem| BuildError(format!("default header: {problem}")))?;
            if name.eq_ignore_ascii_case("content-type") {
                // It goes with a body, and each endpoint's body has its own.
                return Err(BuildError(
                    "default header: `Content-Type` is set per endpoint (Endpoint::content_type)"
                        .to_owned(),
                ));
            }
        }
        let roots = self
            .root_certificates
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                Certificate::from_pem(pem).map_err(|e| {
                    BuildError(format!(
                        "root certificate #{} is not valid PEM ({e})",
                        i + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.build_with(roots))
    }

    /// The client, once the fallible parts (headers, certificates) are checked.
    fn build_with(mut self, roots: Vec<Certificate>) -> Client {
        self.settings.max_idle_per_origin = self
            .max_idle_per_origin
            .unwrap_or_else(|| DEFAULT_MAX_IDLE_PER_ORIGIN.max(self.concurrency.unwrap_or(0)));
        let decompress = self.settings.decompress;
        let transport = Transport::new(self.settings, roots);
        Client {
            http: surf::Client::with_http_client(transport),
            concurrency: self.concurrency.and_then(NonZeroUsize::new),
            retry: self.retry,
            retry_budget: Arc::new(self.retry_budget.unwrap_or_default()),
            jitter: Arc::new(Jitter::new(self.jitter_seed)),
            hedging: self.hedge.map(|policy| Arc::new(Hedging::new(policy))),
            redirects: self.redirects,
            default_headers: Arc::new(self.default_headers),
            decompress,
            blank_request: Arc::default(),
        }
    }
}

/// Why a [`ClientBuilder`] could not build a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}
