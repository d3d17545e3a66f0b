//! What a gather gives back: one outcome per endpoint, in input order, and its JSON form.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Map, Value};
use surf::Url;

use hdrhistogram::Histogram;

use crate::error::{Error, ErrorKind};
use crate::headers::Headers;
use crate::phase::Timeline;

/// A reply: any HTTP status (a 404 or a 500 is data, not an error), its headers, the
/// URL it came from after redirects, and its body, read as the endpoint's
/// [`BodyFormat`](crate::BodyFormat) says (JSON by default).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status code as the server sent it, 100 to 999 (such as 499 or 520).
    pub status: u16,
    /// The body parsed as JSON (an empty body reads as `null`), or as text or left
    /// `null` when the endpoint expects text or bytes.
    pub body: Value,
    /// The reply's header fields. When the body was decompressed, `Content-Encoding`
    /// and `Content-Length` are gone: they described the body as sent.
    pub headers: Headers,
    /// The URL the reply came from: the endpoint's, or the last redirect's.
    pub url: Url,
    bytes: Vec<u8>,
}

impl Reply {
    pub(crate) fn new(
        status: u16,
        body: Value,
        headers: Headers,
        url: Url,
        bytes: Vec<u8>,
    ) -> Self {
        Reply {
            status,
            body,
            headers,
            url,
            bytes,
        }
    }

    /// The body as the server sent it (decompressed), whatever the format.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as text, bytes that are not UTF-8 replaced with `U+FFFD`.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }

    /// The headers as a JSON object, name → value (or an array of values when a name
    /// repeats), names lower-cased.
    fn headers_json(&self) -> Value {
        let mut object = Map::new();
        for (name, value) in self.headers.iter() {
            let value = Value::from(String::from_utf8_lossy(value));
            match object.get_mut(&name.to_ascii_lowercase()) {
                Some(Value::Array(values)) => values.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
                None => {
                    object.insert(name.to_ascii_lowercase(), value);
                }
            }
        }
        Value::Object(object)
    }
}

/// What became of one endpoint's call.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The endpoint's name.
    pub name: String,
    /// The reply, or why there is none.
    pub result: Result<Reply, Error>,
    /// How long this call took, from the moment it was started.
    pub elapsed: Duration,
    /// How many attempts the call made: 1 unless a [retry
    /// policy](crate::RetryPolicy) sent it again; 0 when it never started.
    pub attempts: u32,
    /// Whether a hedged copy of the request was sent (see [`HedgePolicy`](crate::HedgePolicy)).
    pub hedged: bool,
    /// How many hedged copies were sent.
    pub hedges: u32,
    /// Whether the reply came from a hedged copy rather than the first.
    pub hedge_won: bool,
    /// When each phase of the call began and ended, from the start of its batch.
    pub timeline: Timeline,
}

impl Outcome {
    /// The reply, if the call got one.
    pub fn reply(&self) -> Option<&Reply> {
        self.result.as_ref().ok()
    }

    /// The error, if the call failed.
    pub fn error(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }

    /// The outcome as JSON: `{"name", "status", "url", "body", "elapsed_s", "attempts",
    /// "hedged", "hedge_won"}` for a reply, `{"name", "error": {"kind", "message"},
    /// "elapsed_s", "attempts", "hedged", "hedge_won"}` for a failure, where
    /// `message` is the error's whole text, endpoint name first, so it stands on its own
    /// when copied into a log; the error also has `status` and `body_prefix` when the
    /// reply got that far (a `decode` error keeps both).
    pub fn to_json(&self) -> Value {
        self.json(false)
    }

    /// As [`to_json`](Self::to_json), and a reply also carries its `headers`, an object
    /// of lower-cased name → value (an array of values where a name repeats).
    pub fn to_json_with_headers(&self) -> Value {
        self.json(true)
    }

    fn json(&self, with_headers: bool) -> Value {
        let elapsed_s = self.elapsed.as_secs_f64();
        match &self.result {
            Ok(reply) => {
                let mut json = json!({
                    "name": self.name,
                    "status": reply.status,
                    "url": reply.url.as_str(),
                    "body": reply.body,
                    "elapsed_s": elapsed_s,
                    "attempts": self.attempts,
                    "hedged": self.hedged,
                    "hedge_won": self.hedge_won,
                });
                if with_headers {
                    json["headers"] = reply.headers_json();
                }
                json
            }
            Err(err) => {
                let mut error = json!({"kind": err.kind().as_str(), "message": err.to_string()});
                // What a failed reply did say: the status, and the start of a body that
                // was not JSON.
                if let Some(status) = err.status() {
                    error["status"] = status.into();
                }
                if let Some(prefix) = err.body_prefix() {
                    error["body_prefix"] = prefix.into();
                }
                json!({
                    "name": self.name,
                    "error": error,
                    "elapsed_s": elapsed_s,
                    "attempts": self.attempts,
                    "hedged": self.hedged,
                    "hedge_won": self.hedge_won,
                })
            }
        }
    }
}

/// The original client's line for one result: `response: ("tmp_1", 200, {...})` or
/// `error: ("tmp_3", timeout, "timed out after ...")`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Value::from(self.name.as_str());
        match &self.result {
            Ok(reply) => write!(f, "response: ({name}, {}, {})", reply.status, reply.body),
            Err(err) => {
                let message = Value::from(err.message());
                write!(f, "error: ({name}, {}, {message})", err.kind())
            }
        }
    }
}

/// The result of one gather: one [`Outcome`] per endpoint given, in the order given.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// One outcome per endpoint, in input order.
    pub outcomes: Vec<Outcome>,
    /// Wall time of the whole batch.
    pub elapsed: Duration,
}

impl Report {
    /// A report of `outcomes`, one per endpoint in input order, for a batch that took
    /// `elapsed`: for a caller that ran the batch as a stream and put the outcomes back
    /// in order itself.
    pub fn new(outcomes: Vec<Outcome>, elapsed: Duration) -> Self {
        Report { outcomes, elapsed }
    }

    /// Whether every endpoint got a reply (of any status).
    pub fn all_replied(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The batch as an SVG picture: one bar per call on one time axis, in input order,
    /// each phase in its colour (waiting for a slot, connecting, waiting for the head,
    /// reading the body, backoff, hedged), a failed call outlined and labelled with its
    /// kind, the batch's total as a dashed line, and a legend. Past
    /// [`MAX_BARS`](crate::MAX_BARS) calls, one in every `n` is drawn and the title says
    /// so.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = futures::executor::block_on(fanout::Client::new().gather(&[
    ///     fanout::Endpoint::get("nowhere", "http://127.0.0.1:1/"),
    /// ]));
    /// let svg = report.timeline_svg();
    /// assert!(svg.starts_with("<svg") && svg.contains(r#"data-kind="connect""#));
    /// ```
    pub fn timeline_svg(&self) -> String {
        crate::svg::render(self)
    }

    /// Counts by outcome and latency percentiles of the calls; see [`Summary`].
    ///
    /// # Examples
    ///
    /// ```
    /// let report = futures::executor::block_on(fanout::Client::new().gather(&[]));
    /// assert_eq!(report.summary().total(), 0);
    /// ```
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for outcome in &self.outcomes {
            summary.add(outcome);
        }
        summary
    }

    /// The report as one JSON document: `{"elapsed_s": …, "summary": {…}, "results":
    /// [outcome, …]}`, the summary as [`Summary::to_json`] gives it.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = futures::executor::block_on(fanout::Client::new().gather(&[]));
    /// assert_eq!(report.to_json()["results"], serde_json::json!([]));
    /// ```
    pub fn to_json(&self) -> Value {
        self.json(false)
    }

    /// As [`to_json`](Self::to_json), each reply with its headers
    /// ([`Outcome::to_json_with_headers`]).
    pub fn to_json_with_headers(&self) -> Value {
        self.json(true)
    }

    fn json(&self, with_headers: bool) -> Value {
        json!({
            "elapsed_s": self.elapsed.as_secs_f64(),
            "summary": self.summary().to_json(),
            "results": self.outcomes.iter().map(|o| o.json(with_headers)).collect::<Vec<_>>(),
        })
    }
}

/// What a batch came to, outcome by outcome: how many replied, how many failed of each
/// kind, and the latency percentiles of the calls (each call's own `elapsed`). It takes
/// the same few kilobytes whatever the number of calls, so a stream of a million
/// outcomes can be summed up as it goes; percentiles are exact to 3 significant digits
/// (an HDR histogram of microseconds).
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use fanout::{Client, Endpoint, Summary, stub::Stub};
/// use serde_json::json;
///
/// let stub = Stub::start_local()?;
/// let endpoints = [
///     Endpoint::post("ok", stub.url()).json(json!({"sleep_time": 0})),
///     Endpoint::post("bad", "gopher://127.0.0.1/"),
/// ];
/// let report = futures::executor::block_on(Client::new().gather(&endpoints));
/// let summary = report.summary();
/// assert_eq!((summary.total(), summary.replied()), (2, 1));
/// assert_eq!(summary.to_json()["errors"]["invalid_endpoint"], 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Summary {
    replied: u64,
    hedged: u64,
    hedges_won: u64,
    retried: u64,
    errors: Vec<(ErrorKind, u64)>,
    latency_us: Histogram<u64>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            replied: 0,
            hedged: 0,
            hedges_won: 0,
            retried: 0,
            errors: Vec::new(),
            // Three significant digits from 1 µs up, auto-resizing to any duration.
            latency_us: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits is valid")),
        }
    }
}

impl Summary {
    /// Counts one more outcome.
    pub fn add(&mut self, outcome: &Outcome) {
        match &outcome.result {
            Ok(_) => self.replied += 1,
            Err(err) => match self.errors.iter_mut().find(|(kind, _)| *kind == err.kind()) {
                Some((_, count)) => *count += 1,
                None => self.errors.push((err.kind(), 1)),
            },
        }
        self.hedged += u64::from(outcome.hedges);
        self.hedges_won += u64::from(outcome.hedge_won);
        self.retried += u64::from(outcome.attempts > 1);
        if outcome.attempts == 0 {
            // Never started (cancelled, or invalid): no latency to count.
            return;
        }
        let micros = u64::try_from(outcome.elapsed.as_micros()).unwrap_or(u64::MAX);
        // `record` grows the histogram to fit; only a value past its 2^63 range fails.
        if self.latency_us.record(micros.max(1)).is_err() {
            self.latency_us.saturating_record(micros);
        }
    }

    /// How many outcomes were counted.
    pub fn total(&self) -> u64 {
        self.replied + self.failed()
    }

    /// How many calls got a reply (of any status).
    pub fn replied(&self) -> u64 {
        self.replied
    }

    /// How many hedged copies were sent, over all calls.
    pub fn hedges_sent(&self) -> u64 {
        self.hedged
    }

    /// How many calls a hedged copy won.
    pub fn hedges_won(&self) -> u64 {
        self.hedges_won
    }

    /// How many calls took more than one attempt.
    pub fn retried(&self) -> u64 {
        self.retried
    }

    /// How many calls failed, of any kind.
    pub fn failed(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// How many calls failed with `kind`.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// The call latency below which `percent` of the calls fall (50.0 for the median,
    /// 100.0 for the slowest); zero when nothing was counted.
    pub fn latency(&self, percent: f64) -> Duration {
        if self.latency_us.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.latency_us.value_at_percentile(percent))
    }

    /// The summary as JSON: `{"total", "replied", "failed", "errors": {kind: count},
    /// "retried", "hedges_sent", "hedges_won", "latency_ms": {"p50", "p90", "p99", "max"}}`.
    pub fn to_json(&self) -> Value {
        let mut errors = self.errors.clone();
        errors.sort_by_key(|(kind, _)| kind.as_str());
        let ms = |percent: f64| self.latency(percent).as_secs_f64() * 1000.0;
        json!({
            "total": self.total(),
            "replied": self.replied,
            "failed": self.failed(),
            "errors": errors.iter().map(|(k, n)| (k.as_str().to_owned(), Value::from(*n))).collect::<Map<_, _>>(),
            "retried": self.retried,
            "hedges_sent": self.hedged,
            "hedges_won": self.hedges_won,
            "latency_ms": {"p50": ms(50.0), "p90": ms(90.0), "p99": ms(99.0), "max": ms(100.0)},
        })
    }
}

/// One line for a person: `42 calls: 40 replied, 2 failed (timeout: 2); latency p50
/// 1.002 s, p90 …, p99 …, max …`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls: {} replied, {} failed",
            self.total(),
            self.replied,
            self.failed()
        )?;
        if !self.errors.is_empty() {
            let mut errors = self.errors.clone();
            errors.sort_by_key(|(kind, _)| kind.as_str());
            let list: Vec<String> = errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            write!(f, " ({})", list.join(", "))?;
        }
        let s = |percent: f64| self.latency(percent).as_secs_f64();
        write!(
            f,
            "; latency p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
            s(50.0),
            s(90.0),
            s(99.0),
            s(100.0)
        )
    }
}
