//! Following redirects: which replies are redirects, where they lead, and what of the
//! request goes along (RFC 9110 §15.4), as browsers, aiohttp and reqwest do it.

use surf::http::Method;
use surf::Url;

/// How many redirects are followed by default, as in reqwest and aiohttp.
pub const DEFAULT_REDIRECTS: usize = 10;

/// The request of one hop.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    pub(crate) url: Url,
    pub(crate) method: Method,
    /// Whether the endpoint's body goes with this request: 301/302/303 turn a POST
    /// into a GET without one.
    pub(crate) with_body: bool,
    /// Whether credentials (`Authorization`, `Cookie`) may go along: not once a
    /// redirect has left the endpoint's origin.
    pub(crate) with_credentials: bool,
}

impl Hop {
    /// The first request, to the endpoint's own URL.
    pub(crate) fn first(url: Url, method: Method) -> Self {
        Hop {
            url,
            method,
            with_body: true,
            with_credentials: true,
        }
    }

    /// The request a reply with `status` and `location` asks for next: `Ok(None)` when
    /// the reply is not a redirect to follow (a 3xx without `Location` included).
    ///
    /// # Errors
    ///
    /// A `Location` that is not a URL, or one to a scheme other than http or https,
    /// in words that name it.
    pub(crate) fn next(&self, status: u16, location: Option<&[u8]>) -> Result<Option<Hop>, String> {
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(None);
        }
        let Some(location) = location else {
            return Ok(None);
        };
        let location = std::str::from_utf8(location)
            .map_err(|_| format!("a {status} redirect's Location is not UTF-8"))?
            .trim();
        let url = self.url.join(location).map_err(|e| {
            format!("a {status} redirect's Location `{location}` is not a URL ({e})")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "a {status} redirect leads to `{url}`, whose scheme is not http or https"
            ));
        }
        // 303 always becomes a GET (but HEAD stays HEAD); 301 and 302 turn a POST into a
        // GET, as every browser does; 307 and 308 keep method and body.
        let (method, with_body) = match (status, self.method) {
            (303, Method::Head) => (Method::Head, false),
            (303, _) | (301 | 302, Method::Post) => (Method::Get, false),
            _ => (self.method, self.with_body),
        };
        let same_origin = url.origin() == self.url.origin();
        Ok(Some(Hop {
            url,
            method,
            with_body,
            with_credentials: self.with_credentials && same_origin,
        }))
    }
}

/// Headers that carry credentials, dropped when a redirect changes origin.
pub(crate) fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str) -> Hop {
        Hop::first(Url::parse(url).unwrap(), Method::Post)
    }

    #[test]
    fn see_other_and_moved_turn_a_post_into_a_bodiless_get() {
        for status in [301, 302, 303] {
            let next = post("http://a/x")
                .next(status, Some(b"/y"))
                .unwrap()
                .unwrap();
            assert_eq!(
                (next.method, next.with_body),
                (Method::Get, false),
                "{status}"
            );
            assert_eq!(next.url.as_str(), "http://a/y");
        }
    }

    #[test]
    fn temporary_and_permanent_keep_method_and_body() {
        for status in [307, 308] {
            let next = post("http://a/x")
                .next(status, Some(b"y"))
                .unwrap()
                .unwrap();
            assert_eq!((next.method, next.with_body), (Method::Post, true));
        }
    }

    #[test]
    fn leaving_the_origin_drops_credentials_for_good() {
        let away = post("http://a/x")
            .next(307, Some(b"http://b/"))
            .unwrap()
            .unwrap();
        assert!(!away.with_credentials);
        let back = away.next(307, Some(b"http://a/x")).unwrap().unwrap();
        assert!(!back.with_credentials);
        let port = post("http://a/x")
            .next(307, Some(b"http://a:81/"))
            .unwrap()
            .unwrap();
        assert!(!port.with_credentials);
    }

    #[test]
    fn other_statuses_and_missing_locations_are_replies() {
        assert!(post("http://a/").next(300, Some(b"/y")).unwrap().is_none());
        assert!(post("http://a/").next(304, Some(b"/y")).unwrap().is_none());
        assert!(post("http://a/").next(302, None).unwrap().is_none());
    }

    #[test]
    fn a_location_elsewhere_than_http_is_an_error_naming_it() {
        let err = post("http://a/").next(302, Some(b"ftp://a/f")).unwrap_err();
        assert!(err.contains("ftp://a/f"), "{err}");
        assert!(post("http://a/").next(302, Some(b"http://[::1")).is_err());
    }
}
