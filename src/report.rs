//! What a gather gives back: one outcome per endpoint, in input order, and its JSON form.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
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
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{BodyFormat, Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoint = Endpoint::post("raw", stub.url()).json(json!({})).expect(BodyFormat::Bytes);
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// let reply = outcome.reply().expect("a reply");
    /// assert_eq!(reply.body, json!(null)); // not read, as asked
    /// let body: serde_json::Value = serde_json::from_slice(reply.bytes()).expect("the stub sends JSON");
    /// assert_eq!(body["status"], "success");
    /// # Ok(()) }
    /// ```
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as text, bytes that are not UTF-8 replaced with `U+FFFD`.
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoint = Endpoint::post("echo", stub.url()).json(json!({}));
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// let text = outcome.reply().map(|r| r.text().into_owned()).expect("a reply");
    /// assert!(text.contains(r#""status":"success""#), "{text}");
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoint = Endpoint::post("echo", stub.url()).json(json!({"sleep_time": 0}));
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// let reply = outcome.reply().expect("a reply");
    /// assert_eq!(reply.status, 200);
    /// assert_eq!(reply.body["data"], json!({"sleep_time": 0}));
    /// # Ok(()) }
    /// ```
    pub fn reply(&self) -> Option<&Reply> {
        self.result.as_ref().ok()
    }

    /// The error, if the call failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// // Nothing listens on port 1.
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::get("down", "http://127.0.0.1:1/")));
    /// assert!(outcome.reply().is_none());
    /// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::Connect));
    /// ```
    pub fn error(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }

    /// The outcome as JSON: `{"name", "status", "url", "body", "elapsed_s", "attempts",
    /// "hedged", "hedge_won"}` for a reply, `{"name", "error": {"kind", "message"},
    /// "elapsed_s", "attempts", "hedged", "hedge_won"}` for a failure, where
    /// `message` is the error's whole text, endpoint name first, so it stands on its own
    /// when copied into a log; the error also has `status` and `body_prefix` when the
    /// reply got that far (a `decode` error keeps both). `Outcome` implements
    /// `serde::Serialize` with the same form, to write it without building a `Value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::post("bad", "gopher://a/")));
    /// let json = outcome.to_json();
    /// assert_eq!(json["name"], "bad");
    /// assert_eq!(json["error"]["kind"], "invalid_endpoint");
    /// assert!(json["error"]["message"].as_str().is_some_and(|m| m.starts_with("bad: unsupported protocol")));
    /// assert_eq!(json["attempts"], 0); // never sent
    /// assert_eq!(serde_json::to_string(&outcome).unwrap(), json.to_string());
    /// ```
    pub fn to_json(&self) -> Value {
        json!(self.view(false))
    }

    /// As [`to_json`](Self::to_json), and a reply also carries its `headers`, an object
    /// of lower-cased name → value (an array of values where a name repeats).
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoint = Endpoint::post("echo", stub.url()).json(json!({}));
    /// let outcome = futures::executor::block_on(Client::new().call(&endpoint));
    /// let json = outcome.to_json_with_headers();
    /// assert_eq!(json["headers"]["content-type"], "application/json");
    /// assert!(outcome.to_json().get("headers").is_none());
    /// # Ok(()) }
    /// ```
    pub fn to_json_with_headers(&self) -> Value {
        json!(self.view(true))
    }

    /// What the JSON form is made from.
    fn view(&self, with_headers: bool) -> OutcomeJson<'_> {
        let (reply, error) = match &self.result {
            Ok(reply) => (Some(reply), None),
            Err(err) => (
                None,
                Some(ErrorJson {
                    kind: err.kind().as_str(),
                    message: err.to_string(),
                    status: err.status(),
                    body_prefix: err.body_prefix(),
                }),
            ),
        };
        OutcomeJson {
            name: &self.name,
            status: reply.map(|r| r.status),
            url: reply.map(|r| r.url.as_str()),
            body: reply.map(|r| &r.body),
            error,
            elapsed_s: self.elapsed.as_secs_f64(),
            attempts: self.attempts,
            hedged: self.hedged,
            hedge_won: self.hedge_won,
            headers: reply.filter(|_| with_headers).map(Reply::headers_json),
        }
    }
}

/// An outcome in JSON, as [`Outcome::to_json`] writes it.
impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view(false).serialize(serializer)
    }
}

/// An outcome's JSON form: its name; the status, final URL and body of a reply, or the
/// error of a failure; how long it took and how it went; the headers when asked for.
#[derive(Serialize)]
struct OutcomeJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
    elapsed_s: f64,
    attempts: u32,
    hedged: bool,
    hedge_won: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Value>,
}

/// A failure in JSON: its stable kind and message, and what a failed reply did say (the
/// status, and the start of a body that was not JSON).
#[derive(Serialize)]
struct ErrorJson<'a> {
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_prefix: Option<&'a str>,
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use futures::StreamExt;
    /// use fanout::{Client, Endpoint, ErrorKind, Outcome, Report};
    ///
    /// let client = Client::new();
    /// let endpoints = [Endpoint::post("a", "gopher://a/"), Endpoint::post("b", "ftp://b/")];
    /// let started = Instant::now();
    /// let mut landed: Vec<(usize, Outcome)> =
    ///     futures::executor::block_on(client.gather_stream(&endpoints).collect());
    /// landed.sort_by_key(|(index, _)| *index);
    /// let outcomes = landed.into_iter().map(|(_, outcome)| outcome).collect();
    /// let report = Report::new(outcomes, started.elapsed());
    /// assert_eq!(report.outcomes[1].name, "b");
    /// assert_eq!(report.summary().errors_of(ErrorKind::InvalidEndpoint), 2);
    /// ```
    pub fn new(outcomes: Vec<Outcome>, elapsed: Duration) -> Self {
        Report { outcomes, elapsed }
    }

    /// Whether every endpoint got a reply (of any status).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let client = Client::new();
    /// let report = futures::executor::block_on(client.gather(&[Endpoint::post("bad", "gopher://a/")]));
    /// assert!(!report.all_replied());
    /// assert!(futures::executor::block_on(client.gather(&[])).all_replied()); // none failed
    /// ```
    pub fn all_replied(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The batch as an SVG picture: one bar per call on one time axis, in input order,
    /// each phase in its colour (waiting for a slot, connecting, waiting for the head,
    /// reading the body, backoff, hedged), a failed call outlined and labelled with its
    /// kind, the batch's total as a dashed line, and a legend. Past
    /// [`TIMELINE_MAX_BARS`](crate::TIMELINE_MAX_BARS) calls, one in every `n` is drawn
    /// and the title says so.
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
    /// [outcome, …]}`, the summary as [`Summary::to_json`] gives it. `Report` implements
    /// `serde::Serialize` with the same form, to write a large one without building a
    /// `Value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = futures::executor::block_on(fanout::Client::new().gather(&[]));
    /// assert_eq!(report.to_json()["results"], serde_json::json!([]));
    /// assert_eq!(serde_json::to_value(&report).unwrap(), report.to_json());
    /// ```
    pub fn to_json(&self) -> Value {
        json!(self.view(false))
    }

    /// As [`to_json`](Self::to_json), each reply with its headers
    /// ([`Outcome::to_json_with_headers`]).
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use fanout::{Client, Endpoint, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let endpoints = [Endpoint::post("echo", stub.url()).json(json!({}))];
    /// let report = futures::executor::block_on(Client::new().gather(&endpoints));
    /// let json = report.to_json_with_headers();
    /// assert_eq!(json["results"][0]["headers"]["content-type"], "application/json");
    /// assert_eq!(json["summary"]["replied"], 1);
    /// # Ok(()) }
    /// ```
    pub fn to_json_with_headers(&self) -> Value {
        json!(self.view(true))
    }

    /// What the JSON form is made from.
    fn view(&self, with_headers: bool) -> ReportJson<'_> {
        ReportJson {
            elapsed_s: self.elapsed.as_secs_f64(),
            summary: self.summary().to_json(),
            results: self.outcomes.iter().map(|o| o.view(with_headers)).collect(),
        }
    }
}

/// A report in JSON, as [`Report::to_json`] writes it.
impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view(false).serialize(serializer)
    }
}

/// A report's JSON form: the batch's time, its summary, and each outcome in input order.
#[derive(Serialize)]
struct ReportJson<'a> {
    elapsed_s: f64,
    summary: Value,
    results: Vec<OutcomeJson<'a>>,
}

/// What a batch came to, outcome by outcome: how many replied, how many failed of each
/// kind, and the latency percentiles of the calls (each call's own `elapsed`). It takes
/// the same few kilobytes whatever the number of calls, so a stream of a million
/// outcomes can be summed up as it goes; percentiles are exact to 3 significant digits
/// (an HDR histogram of microseconds).
///
/// # Examples
///
#[cfg_attr(feature = "stub", doc = "```")]
#[cfg_attr(not(feature = "stub"), doc = "```ignore")]
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
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind, Summary};
    /// use futures::StreamExt;
    ///
    /// // Summed up as the outcomes land, without keeping them.
    /// let client = Client::new();
    /// let endpoints = [Endpoint::get("down", "http://127.0.0.1:1/"), Endpoint::post("bad", "gopher://a/")];
    /// let mut summary = Summary::default();
    /// futures::executor::block_on(client.gather_stream(&endpoints).for_each(|(_, outcome)| {
    ///     summary.add(&outcome);
    ///     async {}
    /// }));
    /// assert_eq!(summary.total(), 2);
    /// assert_eq!(summary.errors_of(ErrorKind::Connect), 1);
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let endpoints = [Endpoint::post("a", "gopher://a/"), Endpoint::post("b", "gopher://b/")];
    /// let report = futures::executor::block_on(Client::new().gather(&endpoints));
    /// assert_eq!(report.summary().total(), 2);
    /// ```
    pub fn total(&self) -> u64 {
        self.replied + self.failed()
    }

    /// How many calls got a reply (of any status).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let report = futures::executor::block_on(Client::new().gather(&[Endpoint::post("bad", "gopher://a/")]));
    /// assert_eq!((report.summary().replied(), report.summary().failed()), (0, 1));
    /// ```
    pub fn replied(&self) -> u64 {
        self.replied
    }

    /// How many hedged copies were sent, over all calls.
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, HedgePolicy, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// // A reply takes 0.3 s; a hedge goes out after 20 ms without one.
    /// let client = Client::builder()
    ///     .hedge(HedgePolicy::after(Duration::from_millis(20)))
    ///     .build()
    ///     .expect("valid settings");
    /// let slow = Endpoint::post("slow", stub.url()).json(json!({"sleep_time": 0.3})).idempotent(true);
    /// let report = futures::executor::block_on(client.gather(&[slow]));
    /// assert_eq!(report.summary().hedges_sent(), 1);
    /// # Ok(()) }
    /// ```
    pub fn hedges_sent(&self) -> u64 {
        self.hedged
    }

    /// How many calls a hedged copy won.
    ///
    /// # Examples
    ///
    #[cfg_attr(feature = "stub", doc = "```")]
    #[cfg_attr(not(feature = "stub"), doc = "```ignore")]
    /// # fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, HedgePolicy, stub::Stub};
    /// use serde_json::json;
    ///
    /// let stub = Stub::start_local()?;
    /// let client = Client::builder()
    ///     .hedge(HedgePolicy::after(Duration::from_millis(20)))
    ///     .build()
    ///     .expect("valid settings");
    /// let slow = Endpoint::post("slow", stub.url()).json(json!({"sleep_time": 0.3})).idempotent(true);
    /// let report = futures::executor::block_on(client.gather(&[slow]));
    /// let summary = report.summary();
    /// // Both copies sleep as long: either may win, and a call is won at most once.
    /// assert!(summary.hedges_won() <= summary.hedges_sent().min(summary.total()));
    /// assert_eq!(summary.hedges_won(), u64::from(report.outcomes[0].hedge_won));
    /// # Ok(()) }
    /// ```
    pub fn hedges_won(&self) -> u64 {
        self.hedges_won
    }

    /// How many calls took more than one attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, RetryPolicy};
    ///
    /// // A refused connection is sent again: the call takes two attempts.
    /// let client = Client::builder()
    ///     .retry(RetryPolicy::new(2).backoff(Duration::from_millis(1), Duration::from_millis(5)))
    ///     .build()
    ///     .expect("valid settings");
    /// let report = futures::executor::block_on(client.gather(&[Endpoint::get("down", "http://127.0.0.1:1/")]));
    /// assert_eq!(report.summary().retried(), 1);
    /// ```
    pub fn retried(&self) -> u64 {
        self.retried
    }

    /// How many calls failed, of any kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let endpoints = [Endpoint::post("bad", "gopher://a/"), Endpoint::get("down", "http://127.0.0.1:1/")];
    /// let report = futures::executor::block_on(Client::new().gather(&endpoints));
    /// assert_eq!(report.summary().failed(), 2);
    /// ```
    pub fn failed(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// How many calls failed with `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, ErrorKind};
    ///
    /// let endpoints = [Endpoint::post("bad", "gopher://a/"), Endpoint::get("down", "http://127.0.0.1:1/")];
    /// let summary = futures::executor::block_on(Client::new().gather(&endpoints)).summary();
    /// assert_eq!(summary.errors_of(ErrorKind::InvalidEndpoint), 1);
    /// assert_eq!(summary.errors_of(ErrorKind::Timeout), 0);
    /// ```
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// The call latency below which `percent` of the calls fall (50.0 for the median,
    /// 100.0 for the slowest); zero when nothing was counted.
    /// A call that never started (an invalid endpoint, or one its batch stopped first)
    /// is counted in [`total`](Self::total) but has no latency.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, Summary};
    ///
    /// assert_eq!(Summary::default().latency(50.0), Duration::ZERO);
    /// let report = futures::executor::block_on(Client::new().gather(&[Endpoint::get("down", "http://127.0.0.1:1/")]));
    /// let summary = report.summary();
    /// assert!(summary.latency(100.0) > Duration::ZERO);
    /// assert!(summary.latency(50.0) <= summary.latency(100.0));
    /// ```
    pub fn latency(&self, percent: f64) -> Duration {
        if self.latency_us.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.latency_us.value_at_percentile(percent))
    }

    /// The summary as JSON: `{"total", "replied", "failed", "errors": {kind: count},
    /// "retried", "hedges_sent", "hedges_won", "latency_ms": {"p50", "p90", "p99", "max"}}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let report = futures::executor::block_on(Client::new().gather(&[Endpoint::get("down", "http://127.0.0.1:1/")]));
    /// let json = report.summary().to_json();
    /// assert_eq!((&json["total"], &json["errors"]["connect"]), (&1.into(), &1.into()));
    /// assert!(json["latency_ms"]["max"].as_f64().is_some_and(|ms| ms > 0.0));
    /// ```
    pub fn to_json(&self) -> Value {
        let mut errors = self.errors.clone();
        errors.sort_by_key(|(kind, _)| kind.as_str());
        // Whole microseconds, written as milliseconds without float noise (38.463, not
        // 38.462999999999994).
        let ms = |percent: f64| self.latency(percent).as_micros() as f64 / 1000.0;
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
