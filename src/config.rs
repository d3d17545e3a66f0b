//! Loading endpoints from JSON in the original client's dict shape, or from JSON Lines.
//!
//! ```json
//! {
//!   "tmp_1": {"protocol": "http", "host": "localhost", "port": "30001", "route": "/api",
//!             "content_type": "application/json", "time_out": 50, "data": {"sleep_time": 1}}
//! }
//! ```
//!
//! Each endpoint takes either `url`, or all of `protocol`, `host`, `port` (a whole number
//! or a string of digits) and `route`. Optional: `method` (default `POST`),
//! `content_type` (default: the body's own), `time_out` in seconds (fractions allowed,
//! default 50), a body as `data` (any JSON, sent as JSON, `null` included, as the
//! original client does) or `text` (a string sent as it is), `headers` (an object of
//! strings), `expect` (`"json"`, `"text"` or `"bytes"`: how to read the reply) and
//! `idempotent` (`true` or `false`). Any other field given `null` counts as not given.
//! A name written twice is two endpoints, in written order.
//!
//! In JSON Lines ([`load_endpoints_jsonl`]) each line is one endpoint, its name a field:
//! `{"name": "tmp_1", "url": "http://localhost:30001/api", "data": {"sleep_time": 1}}`.
//!
//! Input that is not JSON, or a field that is missing, unknown, written twice, mistyped,
//! or contradicts another, is a [`LoadError`]. A well-typed endpoint whose URL cannot be
//! built (an unknown protocol, a port out of range) loads fine and ends in an
//! `invalid_endpoint` outcome when gathered, so one bad entry never stops the batch.

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::Value;
use surf::http::Method;

use crate::endpoint::{BodyFormat, Endpoint};

/// Why endpoints could not be loaded: names the file, the line (in JSON Lines), and the
/// endpoint and field where there is one.
///
/// # Examples
///
/// ```
/// let err = fanout::parse_endpoints(r#"{"tmp_3": {"url": "http://x/", "time_out": "soon"}}"#, "endpoints.json")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"endpoints.json: tmp_3: field `time_out`: expected seconds as a number, found string "soon""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    source_name: String,
    line: Option<usize>,
    endpoint: Option<String>,
    field: Option<String>,
    message: String,
}

impl LoadError {
    /// The file (or source name) that failed to load.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = fanout::parse_endpoints("[]", "endpoints.json").unwrap_err();
    /// assert_eq!(err.source_name(), "endpoints.json");
    /// ```
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The line at fault, counted from 1, when the source is JSON Lines.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = fanout::parse_endpoint_line("{", 3, "endpoints.jsonl").unwrap_err();
    /// assert_eq!(err.line(), Some(3));
    /// ```
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The endpoint at fault, when the fault is inside one whose name is known.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = fanout::parse_endpoints(r#"{"a": {"url": "http://x/", "bogus": 1}}"#, "t")
    ///     .unwrap_err();
    /// assert_eq!(err.endpoint(), Some("a"));
    /// ```
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The field at fault, when the fault is one field.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = fanout::parse_endpoints(r#"{"a": {"url": "http://x/", "bogus": 1}}"#, "t")
    ///     .unwrap_err();
    /// assert_eq!(err.field(), Some("bogus"));
    /// ```
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source_name)?;
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, "{endpoint}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// Loads endpoints from a JSON file, in the order they are written.
///
/// # Errors
///
/// A [`LoadError`] naming the file, and the endpoint and field where there is one, when
/// the file cannot be read, is not JSON, or holds a missing, unknown, repeated, mistyped
/// or contradictory field.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join("fanout-doc-load.json");
/// std::fs::write(&path, r#"{"a": {"url": "http://127.0.0.1:9/api", "time_out": 0.5}}"#).unwrap();
/// let endpoints = fanout::load_endpoints(&path).unwrap();
/// assert_eq!(endpoints[0].name(), "a");
/// assert_eq!(endpoints[0].time_limit(), std::time::Duration::from_millis(500));
/// ```
pub fn load_endpoints(path: impl AsRef<Path>) -> Result<Vec<Endpoint>, LoadError> {
    let path = path.as_ref();
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Place::default().error(&source_name, format!("cannot read the file ({e})")))?;
    parse_endpoints(&text, &source_name)
}

/// Parses endpoints from JSON text, an object of endpoints by name; `source_name` names
/// it in errors.
///
/// # Errors
///
/// As [`load_endpoints`], less the reading.
///
/// # Examples
///
/// ```
/// let endpoints = fanout::parse_endpoints(
///     r#"{"a": {"protocol": "http", "host": "127.0.0.1", "port": "8080", "route": "/api"}}"#,
///     "inline",
/// ).unwrap();
/// assert_eq!(endpoints[0].url().unwrap().as_str(), "http://127.0.0.1:8080/api");
///
/// let err = fanout::parse_endpoints(r#"{"a": {"url": "http://x/", "time_out": -1}}"#, "inline")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "inline: a: field `time_out`: expected a finite, non-negative number of seconds, found -1"
/// );
/// ```
pub fn parse_endpoints(json: &str, source_name: &str) -> Result<Vec<Endpoint>, LoadError> {
    let mut place = Place::default();
    let mut reader = serde_json::Deserializer::from_str(json);
    let entries = Endpoints(&mut place)
        .deserialize(&mut reader)
        .and_then(|entries| reader.end().map(|()| entries))
        .map_err(|e| place.json_error(source_name, e))?;
    entries
        .into_iter()
        .map(|(name, fields)| fields.into_endpoint(&name, source_name, None))
        .collect()
}

/// Parses one line of JSON Lines: an object with the endpoint's `name` and its fields.
/// `line_number` (from 1) and `source_name` name it in errors.
///
/// # Errors
///
/// A [`LoadError`] naming the source, the line, the endpoint when the line names one,
/// and the field, as for [`parse_endpoints`]; a line without a `name` is one too.
///
/// # Examples
///
/// ```
/// let line = r#"{"name": "a", "url": "http://127.0.0.1:9/", "text": "hi", "expect": "text"}"#;
/// let endpoint = fanout::parse_endpoint_line(line, 1, "endpoints.jsonl").unwrap();
/// assert_eq!((endpoint.name(), endpoint.format()), ("a", fanout::BodyFormat::Text));
///
/// let err = fanout::parse_endpoint_line(r#"{"name": "b", "time_out": "soon"}"#, 3, "endpoints.jsonl")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"endpoints.jsonl: line 3: b: field `time_out`: expected seconds as a number, found string "soon""#
/// );
/// ```
pub fn parse_endpoint_line(
    line: &str,
    line_number: usize,
    source_name: &str,
) -> Result<Endpoint, LoadError> {
    let mut place = Place {
        line: Some(line_number),
        ..Place::default()
    };
    let mut reader = serde_json::Deserializer::from_str(line);
    let parsed = FieldsSeed {
        place: &mut place,
        named: true,
    }
    .deserialize(&mut reader)
    .and_then(|fields| reader.end().map(|()| fields));
    let fields = match parsed {
        Ok(fields) => fields,
        Err(e) => {
            // The fault came before the name: look for it, so the caller can still
            // report the endpoint by name.
            if place.endpoint.is_none() {
                let object = serde_json::from_str::<serde_json::Map<String, Value>>(line);
                place.endpoint = object
                    .ok()
                    .and_then(|o| Some(o.get("name")?.as_str()?.to_owned()));
            }
            return Err(place.json_error(source_name, e));
        }
    };
    match place.endpoint {
        Some(name) => fields.into_endpoint(&name, source_name, Some(line_number)),
        None => Err(Place {
            field: Some("name".to_owned()),
            ..place
        }
        .error(source_name, "missing")),
    }
}

/// Reads endpoints from JSON Lines, one [`parse_endpoint_line`] a line, lazily: only one
/// line is held at a time, so a file of any length streams. Blank lines are skipped; line
/// numbers count them.
///
/// A bad line is an `Err` and the lines after it still load. The caller decides what an
/// `Err` means: to gather the others and report this one as an `invalid_endpoint`
/// outcome, name it [`LoadError::endpoint`], or `line N` ([`LoadError::line`]) when the
/// line named none, and give the error's text as the problem.
///
/// # Errors
///
/// Each item is a [`LoadError`] naming `source_name` and the line when that line cannot
/// be read (it is not UTF-8) or parsed. After any other read error the iterator ends.
///
/// # Examples
///
/// ```
/// let jsonl = "{\"name\": \"a\", \"url\": \"http://127.0.0.1:9/\"}\n\n{\"name\": \"b\"}\n";
/// let items: Vec<_> = fanout::load_endpoints_jsonl(jsonl.as_bytes(), "endpoints.jsonl").collect();
/// assert_eq!(items[0].as_ref().map(|e| e.name()), Ok("a"));
/// let err = items[1].as_ref().unwrap_err();
/// assert_eq!((err.line(), err.endpoint(), err.field()), (Some(3), Some("b"), Some("protocol")));
/// ```
pub fn load_endpoints_jsonl(
    reader: impl BufRead,
    source_name: &str,
) -> impl Iterator<Item = Result<Endpoint, LoadError>> {
    let source_name = source_name.to_owned();
    let mut lines = reader.lines().zip(1..);
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        let (line, line_number) = lines.next()?;
        match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => return Some(parse_endpoint_line(&line, line_number, &source_name)),
            Err(e) => {
                // A line that is not UTF-8 was read past; after any other error the
                // reader may fail the same way forever.
                failed = e.kind() != std::io::ErrorKind::InvalidData;
                let place = Place {
                    line: Some(line_number),
                    ..Place::default()
                };
                return Some(Err(
                    place.error(&source_name, format!("cannot read the line ({e})"))
                ));
            }
        }
    })
}

/// Where in the input the reading is: kept up to date as it goes, because serde's
/// errors know the text position but not the endpoint and field.
#[derive(Debug, Default)]
struct Place {
    line: Option<usize>,
    endpoint: Option<String>,
    field: Option<String>,
}

impl Place {
    /// The error at this place.
    fn error(self, source_name: &str, message: impl Into<String>) -> LoadError {
        LoadError {
            source_name: source_name.to_owned(),
            line: self.line,
            endpoint: self.endpoint,
            field: self.field,
            message: message.into(),
        }
    }

    /// The error serde_json stopped with here. Text that is not JSON is the document's
    /// fault (the position says where) or its line's; anything else is the field's.
    fn json_error(mut self, source_name: &str, e: serde_json::Error) -> LoadError {
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        if e.classify() == Category::Data {
            // Our own words: every value is read by a visitor of ours (`wrong_type`).
            return self.error(source_name, message);
        }
        self.field = None;
        if self.line.is_none() {
            self.endpoint = None;
            return self.error(source_name, format!("not valid JSON ({e})"));
        }
        let column = e.column();
        self.error(
            source_name,
            format!("not valid JSON ({message} at column {column})"),
        )
    }
}

/// One endpoint's fields as written. All are optional to serde: which ones are required
/// depends on whether `url` is given, and [`Fields::into_endpoint`] says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    #[serde(default, deserialize_with = "text")]
    protocol: Option<String>,
    #[serde(default, deserialize_with = "text")]
    host: Option<String>,
    port: Option<Port>,
    #[serde(default, deserialize_with = "text")]
    route: Option<String>,
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    method: Option<String>,
    #[serde(default, deserialize_with = "text")]
    content_type: Option<String>,
    time_out: Option<Seconds>,
    /// `null` is data too: the original client sends `json.dumps(None)`.
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
    #[serde(default, deserialize_with = "text")]
    text: Option<String>,
    headers: Option<Headers>,
    #[serde(default, deserialize_with = "body_format")]
    expect: Option<BodyFormat>,
    #[serde(default, deserialize_with = "flag")]
    idempotent: Option<bool>,
}

impl Fields {
    /// The endpoint, or the field that is missing or contradicts another. A URL that
    /// cannot be made is not an error here but the endpoint's problem, so that one bad
    /// entry gathers to an `invalid_endpoint` outcome instead of stopping the batch.
    fn into_endpoint(
        self,
        name: &str,
        source_name: &str,
        line: Option<usize>,
    ) -> Result<Endpoint, LoadError> {
        let fail = |field: &str, message: &str| {
            let place = Place {
                line,
                endpoint: Some(name.to_owned()),
                field: Some(field.to_owned()),
            };
            Err(place.error(source_name, message))
        };
        let parts = [
            ("protocol", self.protocol.is_some()),
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("route", self.route.is_some()),
        ];
        /// Where the endpoint goes: a URL, or the parts the original client pastes.
        enum Target {
            Url(String),
            Parts([String; 4]),
        }
        let target = match self.url {
            Some(url) => match parts.iter().find(|(_, given)| *given) {
                Some((part, _)) => {
                    return fail(
                        part,
                        "give either `url` or protocol/host/port/route, not both",
                    )
                }
                None => Target::Url(url),
            },
            None => {
                let (Some(protocol), Some(host), Some(Port(port)), Some(route)) =
                    (self.protocol, self.host, self.port, self.route)
                else {
                    let missing = parts.iter().find(|(_, given)| !*given);
                    return fail(
                        missing.map_or("route", |(part, _)| part),
                        "missing (or give `url` instead)",
                    );
                };
                Target::Parts([protocol, host, port, route])
            }
        };
        if self.data.is_some() && self.text.is_some() {
            return fail("text", "give either `data` or `text`, not both");
        }

        let method_name = self.method.as_deref().unwrap_or("POST");
        let method = Method::from_str(&method_name.to_ascii_uppercase()).ok();
        let sent_as = method.unwrap_or(Method::Post);
        let mut endpoint = match target {
            Target::Url(url) => Endpoint::new(name, sent_as, url),
            Target::Parts([protocol, host, port, route]) => {
                Endpoint::from_parts(name, sent_as, [&protocol, &host, &port, &route])
            }
        };
        if method.is_none() {
            endpoint.note_problem(format!("unknown HTTP method `{method_name}`"));
        }
        if let Some(content_type) = self.content_type {
            endpoint = endpoint.content_type(content_type);
        }
        if let Some(Seconds(timeout)) = self.time_out {
            endpoint = endpoint.timeout(timeout);
        }
        if let Some(data) = self.data {
            endpoint = endpoint.json(data);
        }
        if let Some(text) = self.text {
            endpoint = endpoint.text(text);
        }
        for (header, value) in self.headers.map(|h| h.0).unwrap_or_default() {
            endpoint = endpoint.header(header, value);
        }
        if let Some(format) = self.expect {
            endpoint = endpoint.expect(format);
        }
        if let Some(idempotent) = self.idempotent {
            endpoint = endpoint.idempotent(idempotent);
        }
        Ok(endpoint)
    }
}

/// A value of another type than `expected`, in our words and in JSON's names for JSON's
/// types: `expected seconds as a number, found string "soon"`. Every visitor here takes
/// its value through `deserialize_any` and refuses the types it does not read with this,
/// so no message of serde's has to be reworded.
fn wrong_type<E: de::Error>(found: Unexpected<'_>, expected: &dyn de::Expected) -> E {
    let found = match found {
        Unexpected::Unit | Unexpected::Option => "null".to_owned(),
        Unexpected::Seq => "an array".to_owned(),
        Unexpected::Map => "an object".to_owned(),
        // As JSON writes it: serde would spell 1e300 out in full.
        Unexpected::Float(number) => format!("floating point `{number:?}`"),
        other => other.to_string(),
    };
    E::custom(format_args!("expected {expected}, found {found}"))
}

/// A visitor's `visit_*` methods for the JSON types it does not read, each refusing its
/// value with [`wrong_type`].
macro_rules! refuse {
    ($($kind:ident),*) => { $(refuse!(@ $kind);)* };
    (@ bool) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Bool(v), &self))
        }
    };
    (@ i64) => {
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Signed(v), &self))
        }
    };
    (@ u64) => {
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Unsigned(v), &self))
        }
    };
    (@ f64) => {
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Float(v), &self))
        }
    };
    (@ str) => {
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Str(v), &self))
        }
    };
    (@ unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(wrong_type(Unexpected::Unit, &self))
        }
    };
    (@ seq) => {
        fn visit_seq<S: de::SeqAccess<'de>>(self, _: S) -> Result<Self::Value, S::Error> {
            Err(wrong_type(Unexpected::Seq, &self))
        }
    };
    (@ map) => {
        fn visit_map<M: MapAccess<'de>>(self, _: M) -> Result<Self::Value, M::Error> {
            Err(wrong_type(Unexpected::Map, &self))
        }
    };
}

/// A string field.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    refuse!(bool, i64, u64, f64, unit, seq, map);
}

/// A true-or-false field.
struct Flag;

impl<'de> DeserializeSeed<'de> for Flag {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flag {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
        Ok(value)
    }

    refuse!(i64, u64, f64, str, unit, seq, map);
}

/// A field that `null` leaves out, as if it were not given, read by the seed otherwise.
struct Optional<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Optional<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// A string field, `null` counting as not given.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_option(Optional(Text))
}

/// A true-or-false field, `null` counting as not given.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    deserializer.deserialize_option(Optional(Flag))
}

/// `port`: a whole number, or the digits of one as the original client writes it. Its
/// range is the URL's business, so 70000 loads and makes the endpoint invalid.
struct Port(String);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;

        impl<'de> Visitor<'de> for PortVisitor {
            type Value = Port;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number (a whole number or a string of digits)")
            }

            fn visit_u64<E: de::Error>(self, port: u64) -> Result<Port, E> {
                Ok(Port(port.to_string()))
            }

            fn visit_str<E: de::Error>(self, port: &str) -> Result<Port, E> {
                if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Port(port.to_owned()))
                } else {
                    Err(wrong_type(Unexpected::Str(port), &self))
                }
            }

            refuse!(bool, i64, f64, unit, seq, map);
        }

        deserializer.deserialize_any(PortVisitor)
    }
}

/// `time_out`: seconds as a number, fractions allowed; one that is negative, not finite
/// or too large for a [`Duration`] fails the load.
struct Seconds(Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl<'de> Visitor<'de> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds as a number")
            }

            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(seconds)
                    .map(Seconds)
                    .map_err(|_| {
                        E::custom(format_args!(
                            "expected a finite, non-negative number of seconds, found {seconds}"
                        ))
                    })
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(seconds)))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Seconds, E> {
                // serde_json calls this for negative numbers only.
                self.visit_f64(seconds as f64)
            }

            refuse!(bool, str, unit, seq, map);
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

/// `headers`: an object of names to strings, kept in written order, a name written twice
/// sent twice.
struct Headers(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value = map.next_value_seed(HeaderValue(&name))?;
                    headers.push((name, value));
                }
                Ok(Headers(headers))
            }

            refuse!(bool, i64, u64, f64, str, unit, seq);
        }

        deserializer.deserialize_any(HeadersVisitor)
    }
}

/// One header's value: a string, and when it is not, the error names the header.
struct HeaderValue<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for HeaderValue<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeaderValue<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string for header `{}`", self.0)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    refuse!(bool, i64, u64, f64, unit, seq, map);
}

/// `data` as given, `null` included.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// `expect`: a string naming a [`BodyFormat`]. (A derived enum would do, but serde_json
/// calls anything but a string in an enum's place "not valid JSON".)
fn body_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<BodyFormat>, D::Error> {
    let Some(name) = text(deserializer)? else {
        return Ok(None);
    };
    match name.as_str() {
        "json" => Ok(Some(BodyFormat::Json)),
        "text" => Ok(Some(BodyFormat::Text)),
        "bytes" => Ok(Some(BodyFormat::Bytes)),
        other => Err(wrong_type(
            Unexpected::Str(other),
            &r#""json", "text" or "bytes""#,
        )),
    }
}

/// The document: endpoints by name, in written order, a name written twice kept twice
/// (a map would silently keep one, and its outcome would go missing).
struct Endpoints<'p>(&'p mut Place);

impl<'de> DeserializeSeed<'de> for Endpoints<'_> {
    type Value = Vec<(String, Fields)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Endpoints<'_> {
    type Value = Vec<(String, Fields)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of endpoints by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut endpoints = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            self.0.endpoint = Some(name.clone());
            self.0.field = None;
            let fields = map.next_value_seed(FieldsSeed {
                place: &mut *self.0,
                named: false,
            })?;
            endpoints.push((name, fields));
        }
        self.0.endpoint = None;
        Ok(endpoints)
    }

    refuse!(bool, i64, u64, f64, str, unit, seq);
}

/// One endpoint's object, read by [`Fields`]'s derive through [`Noted`]; `named` when it
/// holds the endpoint's `name` too, as a JSON Lines line does.
struct FieldsSeed<'p> {
    place: &'p mut Place,
    named: bool,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.named {
            "an object with the endpoint's name and fields"
        } else {
            "an object of fields"
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
        let noted = Noted {
            map,
            place: self.place,
            named: self.named,
            seen: Vec::new(),
        };
        Fields::deserialize(MapAccessDeserializer::new(noted))
    }

    refuse!(bool, i64, u64, f64, str, unit, seq);
}

/// An endpoint's object as the derive reads it, noting each key in the [`Place`] so that
/// an error names its field; it takes the `name` of a JSON Lines line out of the way, and
/// words an unknown field, and one given twice, our way.
struct Noted<'p, A> {
    map: A,
    place: &'p mut Place,
    named: bool,
    /// The fields read so far.
    seen: Vec<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Noted<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<String>()? else {
            return Ok(None);
        };
        if self.seen.contains(&key) {
            self.place.field = Some(key);
            // The field is named before the message.
            return Err(de::Error::custom("given twice"));
        }
        self.seen.push(key.clone());
        let field = self.place.field.insert(key);
        if self.named && field == "name" {
            self.place.endpoint = Some(self.map.next_value_seed(Text)?);
            return self.next_key_seed(seed);
        }
        seed.deserialize(StrDeserializer::<KeyError>::new(field))
            .map(Some)
            .map_err(|KeyError(expected)| {
                let name = if self.named { "name, " } else { "" };
                de::Error::custom(format_args!(
                    "unknown field (expected one of {name}{})",
                    expected.join(", ")
                ))
            })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// How the derive refuses a key: it is none of these fields. (A string key can fail no
/// other way.)
#[derive(Debug)]
struct KeyError(&'static [&'static str]);

impl de::Error for KeyError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        KeyError(&[])
    }

    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        KeyError(expected)
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown field")
    }
}

impl std::error::Error for KeyError {}
