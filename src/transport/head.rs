//! Reading a reply head: httparse on the bytes up to the blank line, interim 1xx replies
//! skipped, never more buffered than the head limit allows.

use crate::headers::Headers;

use super::error::TransportError;
use super::wire::Wire;

/// The largest reply head read by default: 64 KiB, as the issue of real servers showed
/// (nginx configs send heads of 10 KiB and over a hundred fields).
pub(crate) const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// Header slots tried before counting the head's lines: enough for any ordinary reply,
/// small enough to live on the stack.
const USUAL_FIELDS: usize = 64;

/// How many interim replies are skipped before the final one must come: servers send
/// one or two (100 Continue, 103 Early Hints); a stream of them is not a reply.
const MAX_INTERIM: usize = 16;

/// A final reply's head.
#[derive(Debug)]
pub(crate) struct Head {
    /// HTTP/1.`minor`.
    pub(crate) minor: u8,
    /// The status code as sent, 100 to 999.
    pub(crate) status: u16,
    pub(crate) headers: Headers,
}

impl Head {
    /// Whether the server lets the connection carry another request (RFC 9112 §9.3):
    /// HTTP/1.1 unless it says `close`, HTTP/1.0 only when it says `keep-alive`.
    pub(crate) fn keeps_alive(&self) -> bool {
        if self.minor == 0 {
            self.headers.has_token("connection", "keep-alive")
        } else {
            !self.headers.has_token("connection", "close")
        }
    }
}

/// Reads the final reply's head from `wire`, skipping interim 1xx replies (100
/// Continue, 103 Early Hints), and leaves the bytes after it in the buffer. A head
/// longer than `max_bytes` is refused as soon as that many bytes have come without its
/// end.
pub(crate) async fn read(wire: &mut Wire, max_bytes: usize) -> Result<Head, TransportError> {
    for _ in 0..=MAX_INTERIM {
        let head = read_one(wire, max_bytes).await?;
        match head.status {
            // The connection would switch to another protocol, which is not spoken here.
            101 => {
                return Err(TransportError::protocol(
                    "the server switched protocols (101), which is not supported",
                ))
            }
            100..=199 => continue,
            _ => return Ok(head),
        }
    }
    Err(TransportError::protocol(format!(
        "the server sent more than {MAX_INTERIM} interim 1xx replies and no final one"
    )))
}

/// Reads one head, interim or final.
async fn read_one(wire: &mut Wire, max_bytes: usize) -> Result<Head, TransportError> {
    let mut scanned = 0;
    loop {
        let buffered = wire.buffered();
        if let Some(end) = head_end(buffered, scanned) {
            let head = parse(&buffered[..end])?;
            wire.consume(end);
            return Ok(head);
        }
        scanned = buffered.len();
        if scanned >= max_bytes {
            return Err(TransportError::protocol(format!(
                "the reply head did not end within {}",
                byte_count(max_bytes)
            )));
        }
        let n = wire
            .read_more(max_bytes - scanned, "while the reply head was read")
            .await?;
        if n == 0 {
            return Err(TransportError::protocol(if scanned == 0 {
                "the server closed the connection without replying"
            } else {
                "the server closed the connection in the middle of the reply head"
            }));
        }
    }
}

/// Where the head in `bytes` ends (just past its blank line), looking only at what is
/// new since `scanned` bytes were looked at: a head trickled a byte at a time is not
/// searched again from its start at every byte.
fn head_end(bytes: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    let mut at_line_start = false;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match b {
            b'\n' if at_line_start => return Some(i + 1),
            b'\n' => at_line_start = true,
            b'\r' if at_line_start => {}
            _ => at_line_start = false,
        }
    }
    None
}

/// Parses a whole head (up to and including its blank line).
fn parse(bytes: &[u8]) -> Result<Head, TransportError> {
    let mut fields = [httparse::EMPTY_HEADER; USUAL_FIELDS];
    match parse_into(bytes, &mut fields) {
        Err(httparse::Error::TooManyHeaders) => {
            // Every field takes a line, so the lines bound the fields.
            let lines = bytes.iter().filter(|&&b| b == b'\n').count();
            let mut fields = vec![httparse::EMPTY_HEADER; lines];
            parse_into(bytes, &mut fields).map_err(not_http)
        }
        parsed => parsed.map_err(not_http),
    }
}

/// Parses with the leniency of browsers and aiohttp: several spaces after the status
/// code, spaces before a field's colon, and folded (obsolete multi-line) field values.
fn parse_into<'b>(
    bytes: &'b [u8],
    fields: &mut [httparse::Header<'b>],
) -> Result<Head, httparse::Error> {
    let mut reply = httparse::Response::new(fields);
    let parsed = httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut reply, bytes)?;
    if parsed.is_partial() {
        // The blank line was found, so the head is whole: a partial parse means it is
        // not the head httparse reads.
        return Err(httparse::Error::NewLine);
    }
    let (Some(minor), Some(status)) = (reply.version, reply.code) else {
        return Err(httparse::Error::Status);
    };
    if status < 100 {
        return Err(httparse::Error::Status);
    }
    let (name_bytes, value_bytes) = reply.headers.iter().fold((0, 0), |(n, v), field| {
        (n + field.name.len(), v + field.value.len())
    });
    let mut headers = Headers::with_capacity(reply.headers.len(), name_bytes, value_bytes);
    for field in reply.headers.iter() {
        headers.push(field.name, field.value);
    }
    Ok(Head {
        minor,
        status,
        headers,
    })
}

/// `64 KiB`, or `100 bytes` for a limit that is no whole number of KiB.
fn byte_count(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn not_http(err: httparse::Error) -> TransportError {
    TransportError::protocol(format!("the reply is not valid HTTP/1.x ({err})")).caused_by(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_is_the_first_blank_line_with_or_without_carriage_returns() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nbody", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn the_end_is_found_when_it_arrives_a_byte_at_a_time() {
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        let found = (1..=head.len()).find_map(|len| head_end(&head[..len], len - 1));
        assert_eq!(found, Some(head.len()));
    }

    #[test]
    fn any_three_digit_status_and_obs_text_values_are_read() {
        let head = parse(b"HTTP/1.1 520 Whatever\r\nX-Name: caf\xc3\xa9\r\n\r\n").unwrap();
        assert_eq!((head.minor, head.status), (1, 520));
        assert_eq!(head.headers.get("x-name").as_deref(), Some("café"));
    }

    #[test]
    fn more_fields_than_the_stack_holds_are_read() {
        let mut bytes = b"HTTP/1.0 200 OK\r\n".to_vec();
        for i in 0..300 {
            bytes.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        let head = parse(&bytes).unwrap();
        assert_eq!(head.headers.len(), 300);
        assert_eq!(head.minor, 0);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_field() {
        let keeps = |bytes: &[u8]| parse(bytes).unwrap().keeps_alive();
        assert!(keeps(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!keeps(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        assert!(!keeps(b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(keeps(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn a_status_below_100_or_a_foreign_protocol_is_refused() {
        assert!(parse(b"HTTP/1.1 099 Low\r\n\r\n").is_err());
        let err = parse(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(
            err.message.starts_with("the reply is not valid HTTP/1.x"),
            "{err}"
        );
    }
}
