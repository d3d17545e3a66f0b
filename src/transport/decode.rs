//! Content codings: the body is decompressed as it arrives, into the capped body, so
//! the cap counts decoded bytes and a compression bomb stops at the limit.

use std::io::Write;

use brotli_decompressor::DecompressorWriter;
use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

use crate::error::ErrorKind;

use super::error::TransportError;
use super::limit::LimitedBody;

/// The codings asked for with `Accept-Encoding` when decompression is on.
pub(crate) const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// Working memory of the brotli decoder's output side.
const BROTLI_BUFFER: usize = 8 * 1024;

/// Where the body's bytes go: straight into the body, or through a decompressor.
pub(crate) enum Decoder {
    Identity(LimitedBody),
    Gzip(Box<GzDecoder<LimitedBody>>),
    /// `deflate` before its first byte has told which of its two forms it is.
    Deflate(LimitedBody),
    Zlib(Box<ZlibDecoder<LimitedBody>>),
    RawDeflate(Box<DeflateDecoder<LimitedBody>>),
    Brotli(Box<DecompressorWriter<LimitedBody>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.coding())
    }
}

impl Decoder {
    /// The decoder for a reply's `Content-Encoding` (`None`: no such field). With
    /// `decompress` off the body is kept as sent.
    ///
    /// # Errors
    ///
    /// A coding other than gzip, deflate, br or identity, or more than one coding.
    pub(crate) fn for_coding(
        coding: Option<&[u8]>,
        decompress: bool,
        body: LimitedBody,
    ) -> Result<Self, TransportError> {
        let coding = coding.map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase());
        let decoder = match coding.as_deref() {
            _ if !decompress => Decoder::Identity(body),
            None | Some("" | "identity") => Decoder::Identity(body),
            Some("gzip" | "x-gzip") => Decoder::Gzip(Box::new(GzDecoder::new(body))),
            Some("deflate") => Decoder::Deflate(body),
            Some("br") => Decoder::Brotli(Box::new(DecompressorWriter::new(body, BROTLI_BUFFER))),
            Some(other) => {
                return Err(TransportError::new(
                    ErrorKind::Decode,
                    format!(
                        "the body's Content-Encoding `{other}` is not supported \
                         (only gzip, deflate and br)"
                    ),
                ))
            }
        };
        Ok(decoder)
    }

    /// Whether the body is kept as sent.
    pub(crate) fn is_identity(&self) -> bool {
        matches!(self, Decoder::Identity(_))
    }

    fn coding(&self) -> &'static str {
        match self {
            Decoder::Identity(_) => "identity",
            Decoder::Gzip(_) => "gzip",
            Decoder::Deflate(_) | Decoder::Zlib(_) | Decoder::RawDeflate(_) => "deflate",
            Decoder::Brotli(_) => "br",
        }
    }

    fn body(&self) -> &LimitedBody {
        match self {
            Decoder::Identity(body) | Decoder::Deflate(body) => body,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Zlib(d) => d.get_ref(),
            Decoder::RawDeflate(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
        }
    }

    /// Takes the next piece of the body as sent.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        if let (Decoder::Deflate(_), Some(&first)) = (&*self, bytes.first()) {
            self.pick_deflate_form(first);
        }
        let written = match self {
            Decoder::Identity(body) | Decoder::Deflate(body) => body.write_all(bytes),
            Decoder::Gzip(d) => d.write_all(bytes),
            Decoder::Zlib(d) => d.write_all(bytes),
            Decoder::RawDeflate(d) => d.write_all(bytes),
            Decoder::Brotli(d) => d.write_all(bytes),
        };
        written.map_err(|e| self.failure(e))
    }

    /// `deflate` means zlib-wrapped deflate (RFC 9110 §8.4.1.2), but some servers send
    /// it raw, as browsers and curl accept: a zlib stream starts with a byte whose low
    /// nibble is 8 (the deflate method) and high nibble at most 7 (the window).
    fn pick_deflate_form(&mut self, first: u8) {
        let placeholder = Decoder::Identity(LimitedBody::new(0, None));
        if let Decoder::Deflate(body) = std::mem::replace(self, placeholder) {
            *self = if first & 0x0F == 8 && first >> 4 <= 7 {
                Decoder::Zlib(Box::new(ZlibDecoder::new(body)))
            } else {
                Decoder::RawDeflate(Box::new(DeflateDecoder::new(body)))
            };
        }
    }

    /// The body, once all of it was written.
    pub(crate) fn finish(self) -> Result<Vec<u8>, TransportError> {
        let coding = self.coding();
        let cut = |e: std::io::Error| {
            TransportError::new(
                ErrorKind::Decode,
                format!("the {coding} body could not be decompressed ({e})"),
            )
            .caused_by(e)
        };
        let body = match self {
            Decoder::Identity(body) | Decoder::Deflate(body) => body,
            Decoder::Gzip(d) => d.finish().map_err(cut)?,
            Decoder::Zlib(d) => d.finish().map_err(cut)?,
            Decoder::RawDeflate(d) => d.finish().map_err(cut)?,
            Decoder::Brotli(mut d) => {
                d.close().map_err(cut)?;
                d.into_inner().map_err(|_| {
                    TransportError::new(ErrorKind::Decode, "the br body ended before its end")
                })?
            }
        };
        Ok(body.into_bytes())
    }

    /// What a failed write means: our cap, or a body the decompressor cannot read.
    fn failure(&self, err: std::io::Error) -> TransportError {
        let body = self.body();
        if body.exceeded() {
            return body.refused();
        }
        TransportError::new(
            ErrorKind::Decode,
            format!(
                "the {} body could not be decompressed ({err})",
                self.coding()
            ),
        )
        .caused_by(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn decode(coding: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, TransportError> {
        let body = LimitedBody::new(limit, None);
        let mut decoder = Decoder::for_coding(Some(coding.as_bytes()), true, body)?;
        for piece in bytes.chunks(7) {
            decoder.write(piece)?;
        }
        decoder.finish()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_and_both_forms_of_deflate_are_decoded_in_pieces() {
        let text = b"{\"status\": \"success\"}";
        assert_eq!(decode("gzip", &gzip(text), 100).unwrap(), text);
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(text).unwrap();
        assert_eq!(
            decode("deflate", &zlib.finish().unwrap(), 100).unwrap(),
            text
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(text).unwrap();
        assert_eq!(
            decode("deflate", &raw.finish().unwrap(), 100).unwrap(),
            text
        );
    }

    #[test]
    fn the_limit_counts_decoded_bytes() {
        let err = decode("gzip", &gzip(&[0u8; 10_000]), 1000).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BodyTooLarge, "{err}");
    }

    #[test]
    fn a_corrupt_or_cut_body_names_its_coding() {
        let mut body = gzip(b"hello");
        body[12] ^= 0xFF;
        let err = decode("gzip", &body, 100).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Decode);
        assert!(
            err.message
                .starts_with("the gzip body could not be decompressed"),
            "{err}"
        );
        let whole = gzip(b"hello");
        let err = decode("gzip", &whole[..whole.len() - 4], 100).unwrap_err();
        assert!(err.message.starts_with("the gzip body"), "{err}");
    }

    #[test]
    fn an_unknown_coding_is_refused_unless_decompression_is_off() {
        let err = Decoder::for_coding(Some(b"zstd"), true, LimitedBody::new(9, None)).unwrap_err();
        assert!(err.message.contains("`zstd` is not supported"), "{err}");
        let kept = Decoder::for_coding(Some(b"zstd"), false, LimitedBody::new(9, None));
        assert!(kept.is_ok_and(|d| d.is_identity()));
    }
}
