//! Loading endpoints from JSON in the original client's dict shape.
//!
//! ```json
//! {
//!   "tmp_1": {"protocol": "http", "host": "localhost", "port": "30001", "route": "/api",
//!             "content_type": "application/json", "time_out": 50, "data": {"sleep_time": 1}}
//! }
//! ```
//!
//! Each endpoint takes either `url`, or all of `protocol`, `host`, `port` (a number or a
//! string) and `route`. Optional: `method` (default `POST`), `content_type` (default
//! `application/json`), `time_out` in seconds (fractions allowed, default 50), `data`
//! (any JSON, sent as the body) and `headers` (an object of strings).
//!
//! A file that cannot be read or is not JSON, or a field that is missing, unknown, of the
//! wrong type or a timeout that is negative or not finite, is a [`LoadError`]. A
//! well-typed endpoint whose URL cannot be built (an unknown protocol, a port out of
//! range) loads fine and ends in an `invalid_endpoint` outcome when gathered, so one bad
//! entry never stops the batch.

use std::fmt;
use std::marker::PhantomData;
use std::net::Ipv6Addr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use surf::http::url::Host;
use surf::http::Method;

use crate::endpoint::Endpoint;

/// The fields an endpoint object may have; anything else is a typo and is refused.
const FIELDS: &[&str] = &[
    "protocol",
    "host",
    "port",
    "route",
    "url",
    "method",
    "content_type",
    "time_out",
    "data",
    "headers",
];

/// Why endpoints could not be loaded: names the file, and the endpoint and field where
/// there is one, e.g.
///
/// ```text
/// endpoints.json: tmp_3: field `time_out`: expected seconds as a number, found string "soon"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    source_name: String,
    endpoint: Option<String>,
    field: Option<String>,
    message: String,
}

impl LoadError {
    fn whole(source_name: &str, message: impl Into<String>) -> Self {
        LoadError {
            source_name: source_name.to_owned(),
            endpoint: None,
            field: None,
            message: message.into(),
        }
    }

    /// The file (or source name) that failed to load.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The endpoint at fault, when the fault is inside one.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The field at fault, when the fault is one field.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source_name)?;
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

/// A fault inside one endpoint's object, before the file and endpoint are attached.
struct FieldError {
    field: Option<String>,
    message: String,
}

/// A fault in one named field.
fn field_error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: Some(field.to_owned()),
        message: message.into(),
    }
}

/// Loads endpoints from a JSON file, in the order they are written.
///
/// # Errors
///
/// A [`LoadError`] naming the file, and the endpoint and field where there is one, when
/// the file cannot be read, is not JSON, or holds a missing, unknown or mistyped field.
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
        .map_err(|e| LoadError::whole(&source_name, format!("cannot read the file ({e})")))?;
    parse_endpoints(&text, &source_name)
}

/// Parses endpoints from JSON text; `source_name` names it in errors.
///
/// # Errors
///
/// As [`load_endpoints`], less the reading.
///
/// # Examples
///
/// ```
/// let err = fanout::parse_endpoints(r#"{"a": {"url": "http://x/", "time_out": "soon"}}"#, "inline")
///     .unwrap_err();
/// assert_eq!(err.to_string(), r#"inline: a: field `time_out`: expected seconds as a number, found string "soon""#);
/// ```
pub fn parse_endpoints(json: &str, source_name: &str) -> Result<Vec<Endpoint>, LoadError> {
    let not_json =
        |e: serde_json::Error| LoadError::whole(source_name, format!("not valid JSON ({e})"));
    let document: Value = serde_json::from_str(json).map_err(not_json)?;
    if !document.is_object() {
        return Err(LoadError::whole(
            source_name,
            format!(
                "expected an object of endpoints by name, found {}",
                describe(&document)
            ),
        ));
    }
    // Read again as entries: a name written twice is two endpoints, each with its own
    // outcome, where a map would silently keep one.
    let Entries(entries) = serde_json::from_str::<Entries<Spec>>(json).map_err(not_json)?;
    entries
        .into_iter()
        .map(|(name, spec)| {
            endpoint_from_json(&name, spec).map_err(|e| LoadError {
                source_name: source_name.to_owned(),
                endpoint: Some(name),
                field: e.field,
                message: e.message,
            })
        })
        .collect()
}

/// One endpoint as written: an object's fields, repeats included, or any other JSON.
#[derive(Deserialize)]
#[serde(untagged)]
enum Spec {
    Fields(Entries<Value>),
    Other(Value),
}

/// A JSON object's entries in written order, repeated keys included.
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// The fields of an endpoint, refusing a field written twice: which one was meant?
fn fields_of(spec: Spec) -> Result<Map<String, Value>, FieldError> {
    let entries = match spec {
        Spec::Fields(Entries(entries)) => entries,
        Spec::Other(value) => {
            return Err(FieldError {
                field: None,
                message: format!("expected an object of fields, found {}", describe(&value)),
            })
        }
    };
    let mut fields = Map::new();
    for (field, value) in entries {
        if fields.contains_key(&field) {
            return Err(FieldError {
                field: Some(field),
                message: "given twice".to_owned(),
            });
        }
        fields.insert(field, value);
    }
    Ok(fields)
}

/// One endpoint from its fields; only type errors fail here, bad values become its problem.
fn endpoint_from_json(name: &str, spec: Spec) -> Result<Endpoint, FieldError> {
    let fields = &fields_of(spec)?;
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError {
            field: Some(unknown.clone()),
            message: format!("unknown field (expected one of {})", FIELDS.join(", ")),
        });
    }

    let (url, parts_problem) = match optional_str(fields, "url")? {
        Some(url) => {
            if let Some(clash) = ["protocol", "host", "port", "route"]
                .into_iter()
                .find(|f| fields.contains_key(*f))
            {
                return Err(field_error(
                    clash,
                    "give either `url` or protocol/host/port/route, not both",
                ));
            }
            (url.to_owned(), None)
        }
        None => {
            let protocol = required_str(fields, "protocol")?;
            let host = required_str(fields, "host")?;
            let port = port_text(fields)?;
            let route = required_str(fields, "route")?;
            url_from_parts(protocol, host, &port, route)
        }
    };

    let method_name = optional_str(fields, "method")?.unwrap_or("POST");
    let method = Method::from_str(&method_name.to_ascii_uppercase()).ok();
    let mut endpoint = Endpoint::new(name, method.unwrap_or(Method::Post), &url);
    if let Some(problem) = parts_problem {
        endpoint.replace_problem(problem);
    }
    if method.is_none() {
        endpoint.note_problem(format!("unknown HTTP method `{method_name}`"));
    }
    if let Some(content_type) = optional_str(fields, "content_type")? {
        endpoint = endpoint.content_type(content_type);
    }
    if let Some(seconds) = fields.get("time_out") {
        endpoint = endpoint.timeout(timeout_from_json(seconds)?);
    }
    if let Some(data) = fields.get("data") {
        endpoint = endpoint.json(data.clone());
    }
    match fields.get("headers") {
        None => {}
        Some(Value::Object(headers)) => {
            for (header, value) in headers {
                let Value::String(value) = value else {
                    return Err(field_error(
                        "headers",
                        format!(
                            "header `{header}`: expected a string, found {}",
                            describe(value)
                        ),
                    ));
                };
                endpoint = endpoint.header(header, value);
            }
        }
        Some(other) => {
            return Err(field_error(
                "headers",
                format!(
                    "expected an object of header names to strings, found {}",
                    describe(other)
                ),
            ))
        }
    }
    Ok(endpoint)
}

/// `time_out` in seconds; a negative, infinite or too large one fails the load.
fn timeout_from_json(value: &Value) -> Result<Duration, FieldError> {
    let seconds = value.as_f64().ok_or_else(|| {
        field_error(
            "time_out",
            format!("expected seconds as a number, found {}", describe(value)),
        )
    })?;
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        field_error(
            "time_out",
            format!("expected a finite, non-negative number of seconds, found {seconds}"),
        )
    })
}

/// The port as it goes into the URL: the original client's files write it as a string,
/// JSON users as a number.
fn port_text(fields: &Map<String, Value>) -> Result<String, FieldError> {
    match fields.get("port") {
        None => Err(field_error("port", "missing (or give `url` instead)")),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(field_error(
            "port",
            format!("expected a number or a string, found {}", describe(other)),
        )),
    }
}

/// The URL of the original client's parts, and the first part that cannot be in one.
/// Each part is checked on its own: pasted together, a host `a/b` would silently become
/// a path and a route `api` would be blamed on the port.
fn url_from_parts(protocol: &str, host: &str, port: &str, route: &str) -> (String, Option<String>) {
    // An IPv6 address goes into a URL in brackets; the original files write it bare.
    let bracketed = match host.parse::<Ipv6Addr>() {
        Ok(ip) => format!("[{ip}]"),
        Err(_) => host.to_owned(),
    };
    let parsed_host = Host::parse(&bracketed);
    let url = match &parsed_host {
        Ok(parsed) => format!("{protocol}://{parsed}:{port}{route}"),
        Err(_) => format!("{protocol}://{host}:{port}{route}"),
    };
    let problem = match (parsed_host, port.parse::<u64>()) {
        (Err(e), _) => Some(format!(
            "host `{host}` is not a host name or IP address ({e})"
        )),
        (_, Ok(port)) if port > u64::from(u16::MAX) => {
            Some(format!("port {port} is out of range (0-65535)"))
        }
        (_, Err(_)) => Some(format!("port `{port}` is not a whole number")),
        _ if !route.starts_with('/') => Some(format!("route `{route}` must start with `/`")),
        _ => None,
    };
    (url, problem)
}

/// A string field that must be there.
fn required_str<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, FieldError> {
    optional_str(fields, field)?
        .ok_or_else(|| field_error(field, "missing (or give `url` instead)"))
}

/// A string field that may be absent, but not of another type.
fn optional_str<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, FieldError> {
    match fields.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(field_error(
            field,
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

/// Names a JSON value's type and shows it, for messages like `found string "soon"`.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
    };
    format!("{kind} {value}")
}
