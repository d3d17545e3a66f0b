//! One named HTTP call to make: where it goes, what it sends, how long it may take.

use std::borrow::Cow;
use std::net::Ipv6Addr;
use std::time::Duration;

use serde_json::Value;
use surf::http::Method;
use surf::Url;

use crate::headers;
use crate::retry::RetryPolicy;

/// How long a call may take when the endpoint does not say: 50 s, as in the original
/// Python client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(50);

/// The content type sent with a JSON body unless the endpoint says otherwise.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// How a reply's body is read into [`Reply::body`](crate::Reply::body). Whatever the
/// format, [`Reply::bytes`](crate::Reply::bytes) gives the body as sent (decompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BodyFormat {
    /// JSON (the default): an empty body reads as `null`, anything else that is not
    /// JSON is a `decode` error that keeps the status and the start of the body.
    #[default]
    Json,
    /// Text: the body as a JSON string, bytes that are not UTF-8 replaced with `U+FFFD`.
    Text,
    /// Bytes: the body is not read into `body` (it stays `null`); take it from
    /// [`Reply::bytes`](crate::Reply::bytes).
    Bytes,
}

impl BodyFormat {
    /// The `Accept` a request sends by default when it expects this format.
    pub(crate) fn accept(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Text | BodyFormat::Bytes => "*/*",
        }
    }
}

/// A request body, and the content type it goes with unless the endpoint says otherwise.
#[derive(Debug, Clone, PartialEq)]
enum RequestBody {
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
    Form(String),
}

impl RequestBody {
    fn content_type(&self) -> &'static str {
        match self {
            RequestBody::Json(_) => DEFAULT_CONTENT_TYPE,
            RequestBody::Text(_) => "text/plain; charset=utf-8",
            RequestBody::Bytes(_) => "application/octet-stream",
            RequestBody::Form(_) => "application/x-www-form-urlencoded",
        }
    }
}

/// A named HTTP call: method, URL, headers, an optional body (JSON, text, bytes or a
/// form) and its own timeout.
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
    /// The URL to call, or why there is none: the first problem an endpoint can have.
    url: Result<Url, String>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<RequestBody>,
    format: BodyFormat,
    /// Set by [`Endpoint::idempotent`]; unset, the method decides.
    idempotent: Option<bool>,
    /// Set by [`Endpoint::retry`]; unset, the client's policy applies.
    retry: Option<RetryPolicy>,
    timeout: Duration,
    /// The first problem found after the URL (a bad header, an unknown method).
    problem: Option<String>,
}

impl Endpoint {
    /// An endpoint called with `method` at `url`, with no body and the default timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, Method};
    ///
    /// let ep = Endpoint::new("put_a", Method::Put, "http://127.0.0.1:9/a");
    /// assert_eq!(ep.method(), Method::Put);
    /// assert_eq!(ep.time_limit(), fanout::DEFAULT_TIMEOUT);
    /// ```
    pub fn new(name: impl Into<String>, method: Method, url: impl AsRef<str>) -> Self {
        Endpoint {
            name: name.into(),
            method,
            url: parse_url(url.as_ref()),
            content_type: None,
            headers: Vec::new(),
            body: None,
            format: BodyFormat::Json,
            idempotent: None,
            retry: None,
            timeout: DEFAULT_TIMEOUT,
            problem: None,
        }
    }

    /// An endpoint whose URL is pasted from the original client's parts: `protocol`,
    /// `host`, `port` (digits) and `route`. A part that the pasting would misplace makes
    /// the endpoint invalid with a reason that names the part.
    pub(crate) fn from_parts(name: &str, method: Method, parts: [&str; 4]) -> Self {
        let (url, problem) = url_from_parts(parts);
        let mut endpoint = Endpoint::new(name, method, url);
        if let Some(problem) = problem {
            // Clearer than the URL parser's, which judged the pasted whole.
            endpoint.url = Err(problem);
        }
        endpoint
    }

    /// An endpoint that cannot be sent, for `problem`: gathering it yields an
    /// `invalid_endpoint` outcome that says so. For a loader whose input for this
    /// endpoint was bad (a JSON Lines line that does not parse), so that the batch still
    /// gives it its one outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::invalid("line 3", "not JSON");
    /// assert_eq!(ep.problem(), Some("not JSON"));
    /// ```
    pub fn invalid(name: impl Into<String>, problem: impl Into<String>) -> Self {
        let mut endpoint = Self::new(name, Method::Post, "");
        endpoint.url = Err(problem.into());
        endpoint
    }

    /// A `POST` endpoint, the original client's method.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::post("tmp_1", "http://127.0.0.1:30001/api");
    /// assert_eq!(ep.method(), fanout::Method::Post);
    /// ```
    pub fn post(name: impl Into<String>, url: impl AsRef<str>) -> Self {
        Self::new(name, Method::Post, url)
    }

    /// A `GET` endpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::get("health", "http://127.0.0.1:9/health");
    /// assert_eq!(ep.method(), fanout::Method::Get);
    /// ```
    pub fn get(name: impl Into<String>, url: impl AsRef<str>) -> Self {
        Self::new(name, Method::Get, url)
    }

    /// Sends `data` as the JSON body (`Content-Type: application/json` unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let ep = fanout::Endpoint::post("tmp_1", "http://127.0.0.1:9/api").json(json!({"sleep_time": 1}));
    /// assert_eq!(ep.data(), Some(&json!({"sleep_time": 1})));
    /// assert_eq!(ep.media_type(), "application/json");
    /// ```
    pub fn json(mut self, data: Value) -> Self {
        self.body = Some(RequestBody::Json(data));
        self
    }

    /// Sends `text` as the body, as it is (`Content-Type: text/plain; charset=utf-8`
    /// unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::post("log", "http://127.0.0.1:9/log").text("hello");
    /// assert_eq!(ep.media_type(), "text/plain; charset=utf-8");
    /// ```
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.body = Some(RequestBody::Text(text.into()));
        self
    }

    /// Sends `bytes` as the body, as they are (`Content-Type: application/octet-stream`
    /// unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::post("upload", "http://127.0.0.1:9/blob").bytes(vec![0u8, 1, 2]);
    /// assert_eq!(ep.media_type(), "application/octet-stream");
    /// assert_eq!(ep.data(), None); // not a JSON body
    /// ```
    pub fn bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(RequestBody::Bytes(bytes.into()));
        self
    }

    /// Sends `fields` as an HTML form (`application/x-www-form-urlencoded`), in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::post("login", "http://127.0.0.1:9/login")
    ///     .form([("user", "ada"), ("note", "a&b")]);
    /// assert_eq!(ep.media_type(), "application/x-www-form-urlencoded");
    /// ```
    pub fn form<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.body = Some(RequestBody::Form(encoded));
        self
    }

    /// Reads the reply's body as `format` instead of JSON; the default `Accept` header
    /// follows (`*/*` for text and bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{BodyFormat, Endpoint};
    ///
    /// let ep = Endpoint::get("page", "http://127.0.0.1:9/").expect(BodyFormat::Text);
    /// assert_eq!(ep.format(), BodyFormat::Text);
    /// ```
    pub fn expect(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the `Content-Type` sent with the body (default: the body's own, such as
    /// `application/json` for [`json`](Self::json)).
    /// A value with a line break, a control character or a non-ASCII byte makes the
    /// endpoint invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    ///
    /// let ep = Endpoint::post("a", "http://127.0.0.1:9/").content_type("application/vnd.api+json");
    /// assert_eq!(ep.media_type(), "application/vnd.api+json");
    ///
    /// let bad = Endpoint::post("b", "http://127.0.0.1:9/").content_type("text/plain\r\nX-Evil: 1");
    /// assert!(bad.problem().is_some());
    /// ```
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        let content_type = content_type.into();
        if let Err(problem) = headers::check_value("content_type", &content_type) {
            self.note_problem(problem);
        }
        self.content_type = Some(content_type);
        self
    }

    /// Adds a request header; it replaces the client's default of the same name
    /// (`User-Agent`, `Accept`, …). `Content-Type` is the same as
    /// [`content_type`](Self::content_type). A name that is not an HTTP token, a value
    /// with a line break or a non-ASCII byte, or a header the transport writes itself
    /// (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`, `Expect`) makes the
    /// endpoint invalid, and the header is not kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    ///
    /// let ep = Endpoint::get("a", "http://127.0.0.1:9/").header("Authorization", "Bearer t");
    /// assert_eq!(ep.headers(), [("Authorization".to_owned(), "Bearer t".to_owned())]);
    ///
    /// let bad = Endpoint::get("b", "http://127.0.0.1:9/").header("Host", "elsewhere");
    /// assert_eq!(bad.problem(), Some("header `Host` is set by the transport"));
    /// assert!(bad.headers().is_empty());
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match headers::check(&name, &value) {
            Err(problem) => self.note_problem(problem),
            Ok(()) if name.eq_ignore_ascii_case("content-type") => return self.content_type(value),
            Ok(()) => self.headers.push((name, value)),
        }
        self
    }

    /// Says whether sending the request twice does no more than sending it once, so
    /// that it may be retried or hedged. By default the method says: GET, HEAD, PUT,
    /// DELETE, OPTIONS and TRACE are idempotent (RFC 9110 §9.2.2), POST and PATCH are
    /// not; mark a POST that is (a model's prediction, a search) with `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    /// assert!(Endpoint::get("a", "http://127.0.0.1:9/").is_idempotent());
    /// assert!(!Endpoint::post("b", "http://127.0.0.1:9/").is_idempotent());
    /// assert!(Endpoint::post("c", "http://127.0.0.1:9/").idempotent(true).is_idempotent());
    /// ```
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Retries this endpoint's failures by `policy` instead of the client's (see
    /// [`ClientBuilder::retry`](crate::ClientBuilder::retry)); `RetryPolicy::new(1)`
    /// turns retries off for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, RetryPolicy};
    ///
    /// let ep = Endpoint::get("a", "http://127.0.0.1:9/").retry(RetryPolicy::new(1));
    /// assert_eq!(ep.retry_policy().map(|p| p.max_attempts()), Some(1));
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The endpoint's own retry policy, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, RetryPolicy};
    ///
    /// assert!(Endpoint::get("a", "http://127.0.0.1:9/").retry_policy().is_none());
    /// let ep = Endpoint::get("b", "http://127.0.0.1:9/").retry(RetryPolicy::standard(2));
    /// assert_eq!(ep.retry_policy(), Some(&RetryPolicy::standard(2)));
    /// ```
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// Whether the call may be sent more than once (see [`idempotent`](Self::idempotent)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, Method};
    ///
    /// assert!(Endpoint::new("a", Method::Put, "http://127.0.0.1:9/").is_idempotent());
    /// assert!(!Endpoint::new("b", Method::Patch, "http://127.0.0.1:9/").is_idempotent());
    /// ```
    pub fn is_idempotent(&self) -> bool {
        self.idempotent.unwrap_or(matches!(
            self.method,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        ))
    }

    /// Sets how long the whole call may take, from connecting to the last byte of the
    /// body (default 50 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let ep = fanout::Endpoint::get("a", "http://127.0.0.1:9/").timeout(Duration::from_millis(250));
    /// assert_eq!(ep.time_limit(), Duration::from_millis(250));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Marks the endpoint as one that cannot be sent; the first problem found is kept.
    pub(crate) fn note_problem(&mut self, problem: String) {
        if self.url.is_ok() {
            self.problem.get_or_insert(problem);
        }
    }

    /// The endpoint's name, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(fanout::Endpoint::get("tmp_1", "http://127.0.0.1:9/").name(), "tmp_1");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The HTTP method.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, Method};
    ///
    /// assert_eq!(Endpoint::new("a", Method::Delete, "http://127.0.0.1:9/").method(), Method::Delete);
    /// ```
    pub fn method(&self) -> Method {
        self.method
    }

    /// The target URL, or `None` when there is none to call (see
    /// [`problem`](Self::problem)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    ///
    /// let ep = Endpoint::get("a", "http://localhost:8080/api?q=1");
    /// assert_eq!(ep.url().map(|u| u.port()), Some(Some(8080)));
    /// assert_eq!(Endpoint::get("b", "not a url").url(), None);
    /// ```
    pub fn url(&self) -> Option<&Url> {
        self.url.as_ref().ok()
    }

    /// The `Content-Type` sent with the body: the one set with
    /// [`content_type`](Self::content_type), or the body's own.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    ///
    /// let ep = Endpoint::post("a", "http://127.0.0.1:9/").form([("q", "rust")]);
    /// assert_eq!(ep.media_type(), "application/x-www-form-urlencoded");
    /// assert_eq!(ep.content_type("text/plain").media_type(), "text/plain");
    /// ```
    #[doc(alias = "get_content_type")]
    pub fn media_type(&self) -> &str {
        match (&self.content_type, &self.body) {
            (Some(set), _) => set,
            (None, Some(body)) => body.content_type(),
            (None, None) => DEFAULT_CONTENT_TYPE,
        }
    }

    /// The extra request headers, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep = fanout::Endpoint::get("a", "http://127.0.0.1:9/")
    ///     .header("X-One", "1")
    ///     .header("X-Two", "2");
    /// let names: Vec<&str> = ep.headers().iter().map(|(name, _)| name.as_str()).collect();
    /// assert_eq!(names, ["X-One", "X-Two"]);
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The JSON body, if the body is JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    /// use serde_json::json;
    ///
    /// let ep = Endpoint::post("a", "http://127.0.0.1:9/").json(json!([1, 2]));
    /// assert_eq!(ep.data(), Some(&json!([1, 2])));
    /// assert_eq!(Endpoint::post("b", "http://127.0.0.1:9/").text("hi").data(), None);
    /// ```
    pub fn data(&self) -> Option<&Value> {
        match &self.body {
            Some(RequestBody::Json(data)) => Some(data),
            _ => None,
        }
    }

    /// How the reply's body is read (set with [`expect`](Self::expect)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{BodyFormat, Endpoint};
    ///
    /// assert_eq!(Endpoint::get("a", "http://127.0.0.1:9/").format(), BodyFormat::Json);
    /// ```
    pub fn format(&self) -> BodyFormat {
        self.format
    }

    /// The body as bytes on the wire, if there is one.
    /// Borrowed where the body is already bytes: each hop copies it into its own
    /// request anyway, so a copy here would be a second one.
    pub(crate) fn body_bytes(&self) -> Result<Option<Cow<'_, [u8]>>, String> {
        Ok(Some(match &self.body {
            None => return Ok(None),
            Some(RequestBody::Json(data)) => Cow::Owned(
                serde_json::to_vec(data)
                    .map_err(|e| format!("the body cannot be encoded ({e})"))?,
            ),
            Some(RequestBody::Text(text)) => Cow::Borrowed(text.as_bytes()),
            Some(RequestBody::Bytes(bytes)) => Cow::Borrowed(bytes.as_slice()),
            Some(RequestBody::Form(form)) => Cow::Borrowed(form.as_bytes()),
        }))
    }

    /// How long the whole call may take (set with [`timeout`](Self::timeout)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Endpoint, DEFAULT_TIMEOUT};
    ///
    /// assert_eq!(Endpoint::get("a", "http://127.0.0.1:9/").time_limit(), DEFAULT_TIMEOUT);
    /// ```
    #[doc(alias = "get_timeout")]
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// Why this endpoint cannot be sent, if it cannot.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Endpoint;
    ///
    /// assert_eq!(Endpoint::post("a", "http://127.0.0.1:9/").problem(), None);
    /// assert_eq!(
    ///     Endpoint::post("b", "gopher://a/").problem(),
    ///     Some("unsupported protocol `gopher` in `gopher://a/` (expected http or https)")
    /// );
    /// ```
    pub fn problem(&self) -> Option<&str> {
        self.target().err()
    }

    /// Where its calls go, or why it cannot be called (its first problem).
    pub(crate) fn target(&self) -> Result<&Url, &str> {
        match (&self.url, &self.problem) {
            (Err(problem), _) | (Ok(_), Some(problem)) => Err(problem),
            (Ok(url), None) => Ok(url),
        }
    }
}

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

/// The URL the original client pastes together from its parts, for [`parse_url`] to
/// judge; and a clearer reason than the URL parser's where pasting misplaces a part: a
/// host `a/b` silently becomes a path, a route `api` is blamed on the port, and port
/// 70000 is only an "invalid port number".
fn url_from_parts([protocol, host, port, route]: [&str; 4]) -> (String, Option<String>) {
    // An IPv6 address goes into a URL in brackets; the original files write it bare.
    let url_host = match host.parse::<Ipv6Addr>() {
        Ok(ip) => format!("[{ip}]"),
        Err(_) => host.to_owned(),
    };
    let url = format!("{protocol}://{url_host}:{port}{route}");
    let ends_host = |c: char| {
        matches!(c, '/' | '?' | '#' | '@' | '\\') || (c == ':' && !url_host.starts_with('['))
    };
    let problem = if let Some(c) = url_host.chars().find(|c| ends_host(*c)) {
        Some(format!(
            "host `{host}` is not a host name or IP address (`{c}` cannot be in one)"
        ))
    } else if port.parse::<u16>().is_err() {
        Some(format!("port {port} is out of range (0-65535)"))
    } else if !route.starts_with('/') {
        Some(format!("route `{route}` must start with `/`"))
    } else {
        None
    };
    (url, problem)
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
