//! Writing a request: head and body in one buffer, so they leave in one write.

use std::sync::Arc;

use surf::http::{Method, Url};

use crate::phase::Progress;

/// A request as it goes on the wire, with the call's phase clock, carried past surf in
/// the request's extensions. surf's request then holds only the method and URL: filling
/// its header map (SipHash, two allocations a field) and reading its body back through
/// `AsyncRead` cost more than the rest of building a call, measured (BENCHMARKS.md).
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Tells a timeout which phase it cut short.
    pub(crate) progress: Arc<Progress>,
    /// The whole request, from [`encode`].
    pub(crate) bytes: Vec<u8>,
}

/// The request as bytes on the wire: the request line, `Host`, `fields` (names
/// lower-cased, as HTTP/2 writes them and as http-types did), a `Content-Length`
/// whenever there is a body or the method expects one, and the body. Bodies are never
/// sent chunked: every server reads a Content-Length.
pub(crate) fn encode<'a>(
    method: Method,
    url: &Url,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let body = body.unwrap_or_default();
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method.as_ref().as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.path().as_bytes());
    if let Some(query) = url.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(url.host_str().unwrap_or_default().as_bytes());
    if let Some(port) = url.port() {
        out.push(b':');
        out.extend_from_slice(itoa::Buffer::new().format(port).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    // Written byte for byte: every name and value was checked (`headers::check`) when
    // the endpoint and the client were built, so none can break the head.
    for (name, value) in fields {
        let at = out.len();
        out.extend_from_slice(name.as_bytes());
        out[at..].make_ascii_lowercase();
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<'a>(
        method: Method,
        url: &str,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Option<&[u8]>,
    ) -> String {
        let url = Url::parse(url).unwrap();
        String::from_utf8(encode(method, &url, fields, body)).unwrap()
    }

    #[test]
    fn a_post_carries_host_fields_length_and_body() {
        assert_eq!(
            encoded(
                Method::Post,
                "http://127.0.0.1:8080/api?x=1#frag",
                [("Content-Type", "application/json")],
                Some(b"{}"),
            ),
            "POST /api?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
             Content-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_get_without_a_body_has_no_length_and_the_default_port_is_not_written() {
        assert_eq!(
            encoded(Method::Get, "https://example.com/", [], None),
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
    }

    #[test]
    fn a_post_without_a_body_says_its_length_is_zero() {
        assert_eq!(
            encoded(Method::Post, "http://h:1/", [], None),
            "POST / HTTP/1.1\r\nHost: h:1\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
