//! Writing a request: head and body in one buffer, so they leave in one write.

use http_client::Request;
use surf::http::Method;

use super::error::TransportError;

/// The request as bytes on the wire: the request line, `Host`, the caller's fields, a
/// `Content-Length` whenever there is a body or the method expects one, and the body.
/// Bodies are never sent chunked: every server reads a Content-Length.
pub(crate) async fn encode(req: &mut Request) -> Result<Vec<u8>, TransportError> {
    let url = req.url();
    let mut head = String::with_capacity(256);
    head.push_str(req.method().as_ref());
    head.push(' ');
    head.push_str(url.path());
    if let Some(query) = url.query() {
        head.push('?');
        head.push_str(query);
    }
    head.push_str(" HTTP/1.1\r\nHost: ");
    head.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        head.push(':');
        head.push_str(&port.to_string());
    }
    head.push_str("\r\n");
    for (name, values) in req.iter() {
        for value in values.iter() {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(value.as_str());
            head.push_str("\r\n");
        }
    }
    // Taken after the fields are written: taking the body sets a content type of its own
    // (and parses it: skipped when there is no body).
    let body = if req.len() == Some(0) {
        Vec::new()
    } else {
        req.take_body().into_bytes().await.map_err(|e| {
            TransportError::new(
                crate::error::ErrorKind::InvalidEndpoint,
                format!("the request body could not be read ({e})"),
            )
        })?
    };
    let method = req.method();
    if !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
        head.push_str("Content-Length: ");
        head.push_str(&body.len().to_string());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use surf::http::Url;

    fn encoded(mut req: Request) -> String {
        String::from_utf8(futures::executor::block_on(encode(&mut req)).unwrap()).unwrap()
    }

    #[test]
    fn a_post_carries_host_fields_length_and_body() {
        let url = Url::parse("http://127.0.0.1:8080/api?x=1#frag").unwrap();
        let mut req = Request::new(Method::Post, url);
        req.set_body("{}");
        req.insert_header("Content-Type", "application/json");
        assert_eq!(
            encoded(req),
            "POST /api?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
             Content-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_get_without_a_body_has_no_length_and_the_default_port_is_not_written() {
        let req = Request::new(Method::Get, Url::parse("https://example.com/").unwrap());
        assert_eq!(encoded(req), "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    }
}
