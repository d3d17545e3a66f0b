//! What a gather gives back: one outcome per endpoint, in input order, and its JSON form.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Map, Value};
use surf::Url;

use crate::error::Error;
use crate::headers::Headers;

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

    /// The outcome as JSON: `{"name", "status", "url", "body", "elapsed_s"}` for a reply,
    /// `{"name", "error": {"kind", "message"}, "elapsed_s"}` for a failure, where
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
                json!({"name": self.name, "error": error, "elapsed_s": elapsed_s})
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
    /// Whether every endpoint got a reply (of any status).
    pub fn all_replied(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The report as one JSON document: `{"elapsed_s": …, "results": [outcome, …]}`.
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
            "results": self.outcomes.iter().map(|o| o.json(with_headers)).collect::<Vec<_>>(),
        })
    }
}
