//! Body framing (RFC 9112 §6.3): how long a reply's body is, decided in one function,
//! and the read that follows it to the body's end.

use crate::headers::Headers;

use super::decode::Decoder;
use super::error::TransportError;
use super::head::Head;
use super::wire::Wire;

/// The longest line of a chunked body read (a chunk-size line, the line break after a
/// chunk's data, a trailer line): a line longer than this is not one any server writes,
/// and is refused rather than buffered.
const MAX_LINE: usize = 4 * 1024;

/// How the end of a body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a reply to HEAD, a 204 or a 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

impl Framing {
    /// The framing of `head`'s body, for a request that was (`true`) or was not a HEAD.
    ///
    /// # Errors
    ///
    /// A transfer coding other than chunked, or a Content-Length that is not one number.
    pub(crate) fn of(head: &Head, head_request: bool) -> Result<Self, TransportError> {
        if head_request || matches!(head.status, 100..=199 | 204 | 304) {
            return Ok(Framing::Empty);
        }
        if head.headers.get_bytes("transfer-encoding").is_some() {
            return transfer_coding(&head.headers);
        }
        match content_length(&head.headers)? {
            Some(length) => Ok(Framing::Length(length)),
            None => Ok(Framing::Close),
        }
    }

    /// The length the server announced, if it did.
    pub(crate) fn announced(self) -> Option<u64> {
        match self {
            Framing::Length(length) => Some(length),
            _ => None,
        }
    }
}

/// The framing a Transfer-Encoding field gives: chunked when that is the last coding
/// (and no other but identity is applied), until close when chunked is absent.
fn transfer_coding(headers: &Headers) -> Result<Framing, TransportError> {
    let mut chunked = false;
    for coding in headers
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
    {
        if chunked {
            return Err(TransportError::protocol(
                "the reply's Transfer-Encoding applies a coding after `chunked`",
            ));
        }
        if coding.eq_ignore_ascii_case(b"chunked") {
            chunked = true;
        } else if !coding.eq_ignore_ascii_case(b"identity") {
            return Err(TransportError::protocol(format!(
                "the reply's Transfer-Encoding `{}` is not supported (only `chunked`)",
                String::from_utf8_lossy(coding)
            )));
        }
    }
    Ok(if chunked {
        Framing::Chunked
    } else {
        Framing::Close
    })
}

/// The one Content-Length of `headers`; repeated fields must agree (RFC 9110 §8.6).
fn content_length(headers: &Headers) -> Result<Option<u64>, TransportError> {
    let mut length = None;
    for value in headers
        .get_all("content-length")
        .flat_map(|v| v.split(|&b| b == b','))
    {
        let value = value.trim_ascii();
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                TransportError::protocol(format!(
                    "the reply's Content-Length `{}` is not a number",
                    String::from_utf8_lossy(value)
                ))
            })?;
        if length.is_some_and(|l| l != parsed) {
            return Err(TransportError::protocol(
                "the reply has two different Content-Length values",
            ));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Reads the body framed by `framing` from `wire` into `decoder`. Returns whether the
/// body ended where its framing says, leaving the connection fit for another request
/// (a close-delimited body never does).
pub(crate) async fn read(
    wire: &mut Wire,
    framing: Framing,
    decoder: &mut Decoder,
) -> Result<bool, TransportError> {
    match framing {
        Framing::Empty => Ok(true),
        Framing::Length(length) => {
            read_exactly(wire, length, decoder, |read| {
                format!("the body was cut off (connection closed after {read} of {length} announced body bytes)")
            })
            .await?;
            Ok(true)
        }
        Framing::Chunked => read_chunked(wire, decoder).await,
        Framing::Close => loop {
            let buffered = wire.buffered();
            if !buffered.is_empty() {
                decoder.write(buffered)?;
                let n = buffered.len();
                wire.consume(n);
            }
            if wire.read_more(usize::MAX, "during the body").await? == 0 {
                return Ok(false);
            }
        },
    }
}

/// Moves `length` bytes from `wire` to `decoder`; `cut` words the error when the
/// connection ends first, given how many bytes came.
async fn read_exactly(
    wire: &mut Wire,
    length: u64,
    decoder: &mut Decoder,
    cut: impl Fn(u64) -> String,
) -> Result<(), TransportError> {
    let mut left = length;
    while left > 0 {
        if wire.buffered().is_empty() {
            let room = usize::try_from(left).unwrap_or(usize::MAX);
            if wire.read_more(room, "during the body").await? == 0 {
                return Err(TransportError::protocol(cut(length - left)));
            }
        }
        let buffered = wire.buffered();
        let take = buffered
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        decoder.write(&buffered[..take])?;
        wire.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Reads a chunked body and its trailer section. A body whose last chunk came but
/// whose connection closed before the trailers' end is whole, but its connection is
/// not reused.
async fn read_chunked(wire: &mut Wire, decoder: &mut Decoder) -> Result<bool, TransportError> {
    loop {
        let Some(line) = read_line(wire).await? else {
            return Err(malformed("the connection closed before the last chunk"));
        };
        let size = match httparse::parse_chunk_size(&wire.buffered()[..line]) {
            Ok(httparse::Status::Complete((_, size))) => size,
            _ => {
                let text = String::from_utf8_lossy(&wire.buffered()[..line.min(40)]);
                return Err(malformed(&format!(
                    "bad chunk size line `{}`",
                    text.trim_end()
                )));
            }
        };
        wire.consume(line);
        if size == 0 {
            break;
        }
        read_exactly(wire, size, decoder, |read| {
            format!("the body was cut off (connection closed after {read} of a {size} byte chunk)")
        })
        .await?;
        match read_line(wire).await? {
            Some(2) if wire.buffered().starts_with(b"\r\n") => wire.consume(2),
            Some(1) => wire.consume(1),
            Some(_) => return Err(malformed("a chunk is longer than its size says")),
            None => return Err(malformed("the connection closed after a chunk")),
        }
    }
    // The trailer section: fields, then an empty line. Its fields are not kept.
    let mut trailers = 0;
    loop {
        match read_line(wire).await? {
            None => return Ok(false),
            Some(line) => {
                let empty = matches!(&wire.buffered()[..line], b"\r\n" | b"\n");
                wire.consume(line);
                trailers += line;
                if empty {
                    return Ok(true);
                }
                if trailers > MAX_LINE * 4 {
                    return Err(malformed("the trailer section is too long"));
                }
            }
        }
    }
}

/// Waits until a whole line (through `\n`) is buffered and gives its length; `None` when
/// the connection closes first.
async fn read_line(wire: &mut Wire) -> Result<Option<usize>, TransportError> {
    let mut scanned = 0;
    loop {
        let buffered = wire.buffered();
        if let Some(at) = buffered[scanned..].iter().position(|&b| b == b'\n') {
            return Ok(Some(scanned + at + 1));
        }
        scanned = buffered.len();
        if scanned >= MAX_LINE {
            return Err(malformed("a line of the chunked body does not end"));
        }
        if wire
            .read_more(MAX_LINE - scanned, "during the body")
            .await?
            == 0
        {
            return Ok(None);
        }
    }
}

fn malformed(detail: &str) -> TransportError {
    TransportError::protocol(format!("the chunked body is malformed ({detail})"))
}
