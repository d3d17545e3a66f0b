//! The response body's cap: a sink that refuses the byte past the limit, so a body never
//! takes more memory than the limit, decoded or not.

use std::fmt;
use std::io::{self, Write};

use crate::error::ErrorKind;

use super::error::TransportError;

/// Why a body was refused: it passed, or announced it would pass, the limit.
#[derive(Debug)]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: u64,
    pub(crate) announced: Option<u64>,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.announced {
            Some(len) => write!(
                f,
                "the body announced {len} bytes, over the {} byte limit",
                self.limit
            ),
            None => write!(f, "the body passed the {} byte limit", self.limit),
        }
    }
}

impl std::error::Error for BodyTooLarge {}

impl BodyTooLarge {
    /// The transport's `body_too_large` error, in this one place.
    pub(crate) fn into_error(self) -> TransportError {
        TransportError::new(ErrorKind::BodyTooLarge, self.to_string())
    }
}

/// The body as it is read (decoded, where a decoder writes into it), refusing the byte
/// past `limit`. It is a `Write` so that a decompressor can write into it directly.
#[derive(Debug)]
pub(crate) struct LimitedBody {
    bytes: Vec<u8>,
    limit: u64,
    /// Set once a write was refused, so a decoder's failure can be told from ours.
    exceeded: bool,
}

impl LimitedBody {
    /// An empty body with room for what the server announced, up to 1 MiB: the first
    /// read never regrows, and a false announcement costs little.
    pub(crate) fn new(limit: u64, announced: Option<u64>) -> Self {
        let capacity = announced.unwrap_or(0).min(limit).min(1 << 20);
        LimitedBody {
            bytes: Vec::with_capacity(capacity as usize),
            limit,
            exceeded: false,
        }
    }

    /// Refuses a body whose announced length alone passes `limit`, before reading it.
    pub(crate) fn check_announced(
        limit: u64,
        announced: Option<u64>,
    ) -> Result<(), TransportError> {
        match announced {
            Some(length) if length > limit => Err(BodyTooLarge {
                limit,
                announced: Some(length),
            }
            .into_error()),
            _ => Ok(()),
        }
    }

    /// The error of a write this body refused.
    pub(crate) fn refused(&self) -> TransportError {
        BodyTooLarge {
            limit: self.limit,
            announced: None,
        }
        .into_error()
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Write for LimitedBody {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() as u64 + buf.len() as u64 > self.limit {
            self.exceeded = true;
            return Err(io::Error::other(BodyTooLarge {
                limit: self.limit,
                announced: None,
            }));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_past_the_limit_is_refused_and_nothing_of_it_kept() {
        let mut body = LimitedBody::new(4, None);
        assert!(body.write_all(b"abc").is_ok());
        assert!(body.write_all(b"de").is_err());
        assert!(body.exceeded());
        assert_eq!(body.into_bytes(), b"abc");
    }
}
