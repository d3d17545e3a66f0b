//! One named HTTP call to make: where it goes, what it sends, how long it may take.

use std::time::Duration;

use serde_json::Value;
use surf::http::Method;
use surf::Url;

/// How long a call may take when the endpoint does not say: 50 s, as in the original
/// Python client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(50);

/// The content type sent with a JSON body unless the endpoint says otherwise.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// A named HTTP call: method, URL, headers, an optional JSON body and its own timeout.
///
/// Building an endpoint never fails. Anything that keeps it from becoming a request (a
/// malformed URL, a protocol other than http or https, a header with a line break) is
/// kept as its [`problem`](Endpoint::problem), and gathering it yields an
/// `invalid_endpoint` outcome without sending anything, so one bad entry never stops a
/// batch.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::Endpoint;
/// use serde_json::json;
///
/// let ep = Endpoint::post("tmp_1", "http://127.0.0.1:30001/api")
///     .json(json!({"sleep_time": 1}))
///     .timeout(Duration::from_secs(5));
/// assert_eq!(ep.name(), "tmp_1");
/// assert_eq!(ep.time_limit(), Duration::from_secs(5));
/// assert!(ep.problem().is_none());
///
/// let bad = Endpoint::post("tmp_2", "ftp://127.0.0.1/api");
/// assert!(bad.problem().unwrap().contains("ftp"));
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    name: String,
    method: Method,
    url: Option<Url>,
    content_type: String,
    headers: Vec<(String, String)>,
    data: Option<Value>,
    timeout: Duration,
    problem: Option<String>,
}

impl Endpoint {
    /// An endpoint called with `method` at `url`, with no body and the default timeout.
    pub fn new(name: impl Into<String>, method: Method, url: impl AsRef<str>) -> Self {
        let (url, problem) = match parse_url(url.as_ref()) {
            Ok(url) => (Some(url), None),
            Err(problem) => (None, Some(problem)),
        };
        Endpoint {
            name: name.into(),
            method,
            url,
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
            headers: Vec::new(),
            data: None,
            timeout: DEFAULT_TIMEOUT,
            problem,
        }
    }

    /// A `POST` endpoint, the original client's method.
    pub fn post(name: impl Into<String>, url: impl AsRef<str>) -> Self {
        Self::new(name, Method::Post, url)
    }

    /// A `GET` endpoint.
    pub fn get(name: impl Into<String>, url: impl AsRef<str>) -> Self {
        Self::new(name, Method::Get, url)
    }

    /// Sends `data` as the JSON body.
    pub fn json(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets the `Content-Type` sent with the body (default `application/json`).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        let content_type = content_type.into();
        if let Err(problem) = check_header_value("content_type", &content_type) {
            self.note_problem(problem);
        }
        self.content_type = content_type;
        self
    }

    /// Adds a request header. `Content-Type` is the same as
    /// [`content_type`](Self::content_type). A name that is not an HTTP token, a value
    /// with a line break or a non-ASCII byte, or a header the transport writes itself
    /// (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`, `Expect`) makes the endpoint
    /// invalid, and the header is not kept.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match check_header_name(&name).and_then(|()| check_header_value(&name, &value)) {
            Err(problem) => self.note_problem(problem),
            Ok(()) if name.eq_ignore_ascii_case("content-type") => return self.content_type(value),
            // A second framing header beside the transport's own would let the server
            // misread where the request ends.
            Ok(())
                if TRANSPORT_HEADERS
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h)) =>
            {
                self.note_problem(format!("header `{name}` is set by the transport"));
            }
            Ok(()) => self.headers.push((name, value)),
        }
        self
    }

    /// Sets how long the whole call may take, from connecting to the last byte of the
    /// body (default 50 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Marks the endpoint as one that cannot be sent; the first problem found is kept.
    pub(crate) fn note_problem(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }

    /// Marks the endpoint as one that cannot be sent, for a reason clearer than any
    /// found so far.
    pub(crate) fn replace_problem(&mut self, problem: String) {
        self.problem = Some(problem);
    }

    /// The endpoint's name, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The target URL, or `None` when it could not be parsed.
    pub fn url(&self) -> Option<&Url> {
        self.url.as_ref()
    }

    /// The `Content-Type` sent with the body (set with [`content_type`](Self::content_type)).
    #[doc(alias = "get_content_type")]
    pub fn media_type(&self) -> &str {
        &self.content_type
    }

    /// The extra request headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The JSON body, if any.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// How long the whole call may take (set with [`timeout`](Self::timeout)).
    #[doc(alias = "get_timeout")]
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// Why this endpoint cannot be sent, if it cannot.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

/// Headers the transport writes for every request, which an endpoint may not set;
/// `Expect: 100-continue` would draw an interim reply the transport refuses.
const TRANSPORT_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

/// The URL, if it is one this client can call: http or https.
fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("malformed url `{text}` ({e})"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "unsupported protocol `{other}` in `{text}` (expected http or https)"
            ))
        }
    }
    Ok(url)
}

/// Header names must be HTTP tokens (RFC 9110 §5.6.2); anything else could not be sent.
fn check_header_name(name: &str) -> Result<(), String> {
    let is_token_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "header name `{}` is not a valid HTTP token",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Header values must be visible ASCII: a line break would let a value inject headers.
fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    let is_value_byte = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
    if !value.bytes().all(is_value_byte) {
        return Err(format!(
            "header `{name}` has a value with a line break, control or non-ASCII character (`{}`)",
            value.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_with_a_line_break_makes_the_endpoint_invalid() {
        let ep = Endpoint::get("e", "http://127.0.0.1/").header("x-a", "1\r\nx-b: 2");
        assert!(ep.problem().unwrap_or_default().contains("header `x-a`"));
    }

    #[test]
    fn a_header_name_with_a_space_makes_the_endpoint_invalid() {
        let ep = Endpoint::get("e", "http://127.0.0.1/").header("x a", "1");
        assert!(ep
            .problem()
            .unwrap_or_default()
            .contains("not a valid HTTP token"));
    }

    #[test]
    fn a_framing_header_is_refused_and_content_type_is_the_content_type() {
        let ep = Endpoint::post("e", "http://127.0.0.1/").header("Transfer-Encoding", "chunked");
        assert_eq!(
            ep.problem(),
            Some("header `Transfer-Encoding` is set by the transport")
        );
        assert!(ep.headers().is_empty());
        let ep = Endpoint::post("e", "http://127.0.0.1/").header("expect", "100-continue");
        assert_eq!(
            ep.problem(),
            Some("header `expect` is set by the transport")
        );
        let ep = Endpoint::post("e", "http://127.0.0.1/").header("content-type", "text/plain");
        assert_eq!(
            (ep.media_type(), ep.headers().len(), ep.problem()),
            ("text/plain", 0, None)
        );
    }

    #[test]
    fn the_first_problem_is_the_one_kept() {
        let ep = Endpoint::get("e", "nope").header("x a", "1");
        assert!(ep
            .problem()
            .unwrap_or_default()
            .starts_with("malformed url"));
    }

    #[test]
    fn a_plain_endpoint_has_no_problem() {
        let ep =
            Endpoint::post("e", "https://example.com:8443/api").header("authorization", "Bearer x");
        assert_eq!(ep.problem(), None);
        assert_eq!(ep.url().map(|u| u.port()), Some(Some(8443)));
    }
}
