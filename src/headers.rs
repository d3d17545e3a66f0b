//! Header fields as a server sent them, and the rules a header must meet to be sent.

use std::borrow::Cow;
use std::fmt;

/// A reply's header fields, in the order the server sent them. Names are looked up
/// ignoring case; values are kept as bytes (a server may send bytes over 0x7F), and read
/// as text lossily.
///
/// # Examples
///
/// ```
/// let headers = fanout::Headers::from_pairs([("Content-Type", "application/json"), ("X-Name", "café")]);
/// assert_eq!(headers.get("content-type").as_deref(), Some("application/json"));
/// assert_eq!(headers.get("x-name").as_deref(), Some("café"));
/// assert_eq!(headers.get("missing"), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    // Three allocations for a whole head, not two per field: a reply's fields are read
    // for every call, and their allocations showed in the steady-state profile.
    /// Every name, one after another.
    names: String,
    /// Every value, one after another.
    values: Vec<u8>,
    /// Where each field's name and value end in `names` and `values`, in order.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Headers from `(name, value)` pairs, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("a", "1"), ("b", "2")]);
    /// let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.push(name.as_ref(), value.as_ref());
        }
        headers
    }

    /// Room for `fields` fields whose names and values take `name_bytes` and
    /// `value_bytes` in all.
    pub(crate) fn with_capacity(fields: usize, name_bytes: usize, value_bytes: usize) -> Self {
        Headers {
            names: String::with_capacity(name_bytes),
            values: Vec::with_capacity(value_bytes),
            ends: Vec::with_capacity(fields),
        }
    }

    /// Adds a field at the end.
    pub(crate) fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.ends.push((self.names.len(), self.values.len()));
    }

    /// The `i`th field's name.
    fn name(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before].0);
        &self.names[start..self.ends[i].0]
    }

    /// The `i`th field's value.
    fn value(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before].1);
        &self.values[start..self.ends[i].1]
    }

    /// The positions of the fields called `name` (any case), in order: names alone are
    /// compared, no value is sliced until one matches.
    fn find<'a>(&'a self, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        let names = self.names.as_bytes();
        let mut start = 0;
        self.ends
            .iter()
            .enumerate()
            .filter_map(move |(i, &(end, _))| {
                let this = &names[start..end];
                start = end;
                this.eq_ignore_ascii_case(name.as_bytes()).then_some(i)
            })
    }

    /// Removes every field called `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        if self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            *self = Headers::from_pairs(self.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)));
        }
    }

    /// The first value of the field `name` (any case), as text: bytes that are not UTF-8
    /// are replaced with `U+FFFD`.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("X-Name", &b"caf\xe9"[..])]);
    /// assert_eq!(headers.get("x-name").as_deref(), Some("caf\u{fffd}"));
    /// ```
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get_bytes(name).map(String::from_utf8_lossy)
    }

    /// The first value of the field `name` (any case), as sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("X-Name", &b"caf\xe9"[..])]);
    /// assert_eq!(headers.get_bytes("X-NAME"), Some(&b"caf\xe9"[..]));
    /// ```
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.find(name).next().map(|i| self.value(i))
    }

    /// Every value of the field `name` (any case), in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("Set-Cookie", "a=1"), ("set-cookie", "b=2")]);
    /// let cookies: Vec<&[u8]> = headers.get_all("set-cookie").collect();
    /// assert_eq!(cookies, [&b"a=1"[..], &b"b=2"[..]]);
    /// ```
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.find(name).map(|i| self.value(i))
    }

    /// Whether the comma-separated values of field `name` list `token` (any case), as
    /// `Connection: keep-alive, close` lists `close`.
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|value| value.split(|&b| b == b','))
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Every field, in order, with its value as sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("Server", "nginx"), ("Vary", "Accept")]);
    /// let fields: Vec<(&str, &[u8])> = headers.iter().collect();
    /// assert_eq!(fields, [("Server", &b"nginx"[..]), ("Vary", &b"Accept"[..])]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        (0..self.ends.len()).map(|i| (self.name(i), self.value(i)))
    }

    /// How many fields there are, a repeated name counted each time.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = fanout::Headers::from_pairs([("Vary", "Accept"), ("Vary", "Origin")]);
    /// assert_eq!(headers.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no fields.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(fanout::Headers::default().is_empty());
    /// assert!(!fanout::Headers::from_pairs([("Vary", "Accept")]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Header names must be HTTP tokens (RFC 9110 §5.6.2); anything else could not be sent.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
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
pub(crate) fn check_value(name: &str, value: &str) -> Result<(), String> {
    let is_value_byte = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
    if !value.bytes().all(is_value_byte) {
        return Err(format!(
            "header `{name}` has a value with a line break, control or non-ASCII character (`{}`)",
            value.escape_debug()
        ));
    }
    Ok(())
}

/// Headers the transport writes for every request, which a caller may not set: a second
/// framing header beside the transport's own would let the server misread where the
/// request ends, and `Expect: 100-continue` would make the request wait for a reply the
/// transport does not wait for.
pub(crate) const TRANSPORT_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

/// Checks a header a caller wants sent: a valid name, a safe value, not one the
/// transport writes.
pub(crate) fn check(name: &str, value: &str) -> Result<(), String> {
    check_name(name)?;
    check_value(name, value)?;
    if TRANSPORT_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
    {
        return Err(format!("header `{name}` is set by the transport"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_keeps_order() {
        let headers = Headers::from_pairs([("Set-Cookie", "a=1"), ("set-cookie", "b=2")]);
        let all: Vec<_> = headers.get_all("SET-COOKIE").collect();
        assert_eq!(all, [&b"a=1"[..], &b"b=2"[..]]);
    }

    #[test]
    fn removing_a_name_keeps_the_other_fields_in_order() {
        let mut headers =
            Headers::from_pairs([("A", "1"), ("Content-Encoding", "gzip"), ("b", "2")]);
        headers.remove("content-encoding");
        let fields: Vec<_> = headers.iter().collect();
        assert_eq!(fields, [("A", &b"1"[..]), ("b", &b"2"[..])]);
        assert_eq!(headers, Headers::from_pairs([("A", "1"), ("b", "2")]));
        headers.remove("missing");
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn bytes_that_are_not_utf8_read_lossily() {
        let headers = Headers::from_pairs([("x-name", &b"caf\xe9"[..])]);
        assert_eq!(headers.get("x-name").as_deref(), Some("caf\u{fffd}"));
        assert_eq!(headers.get_bytes("x-name"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn tokens_are_found_among_comma_separated_values() {
        let headers = Headers::from_pairs([("Connection", "keep-alive, Close")]);
        assert!(headers.has_token("connection", "close"));
        assert!(!headers.has_token("connection", "upgrade"));
    }

    #[test]
    fn framing_headers_and_line_breaks_are_refused() {
        assert_eq!(
            check("Transfer-Encoding", "chunked"),
            Err("header `Transfer-Encoding` is set by the transport".to_owned())
        );
        assert!(check("x-a", "1\r\nx-b: 2").is_err());
        assert!(check("x a", "1").is_err());
        assert_eq!(check("authorization", "Bearer x"), Ok(()));
    }
}
