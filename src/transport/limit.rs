//! The response body's length rules: never more than the cap, never less than announced.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead};

/// The error inside the `io::Error` a [`LimitedBody`] fails with once the cap is passed.
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

/// Wraps a response body so that reading it fails with [`BodyTooLarge`] as soon as it
/// would pass `limit` bytes (at once, if its Content-Length already says so), and with
/// `UnexpectedEof` if the connection ends before the announced Content-Length.
/// It never holds more than the reader below it does.
#[derive(Debug)]
pub(crate) struct LimitedBody<R> {
    inner: R,
    budget: Budget,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: u64,
    announced: Option<u64>,
    read: u64,
}

impl Budget {
    fn too_large(self) -> io::Error {
        io::Error::other(BodyTooLarge {
            limit: self.limit,
            announced: self.announced,
        })
    }

    /// Refuses a body whose Content-Length alone is over the limit, before reading any of it.
    fn check_announced(self) -> io::Result<()> {
        match self.announced {
            Some(announced) if announced > self.limit => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    /// Checks a chunk of `len` bytes from below (0: end of body) before handing it up;
    /// the readers have already run [`check_announced`](Self::check_announced).
    fn admit(self, len: usize) -> io::Result<()> {
        if len == 0 {
            if let Some(announced) = self.announced.filter(|&a| a > self.read) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} of {announced} announced body bytes",
                        self.read
                    ),
                ));
            }
        } else if self.read + len as u64 > self.limit {
            return Err(self.too_large());
        }
        Ok(())
    }
}

impl<R> LimitedBody<R> {
    pub(crate) fn new(inner: R, limit: u64, announced: Option<u64>) -> Self {
        LimitedBody {
            inner,
            budget: Budget {
                limit,
                announced,
                read: 0,
            },
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LimitedBody<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.budget.check_announced()?;
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.budget.admit(n)?;
        self.budget.read += n as u64;
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for LimitedBody<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let budget = this.budget;
        budget.check_announced()?;
        let chunk = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
        budget.admit(chunk.len())?;
        Poll::Ready(Ok(chunk))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.budget.read += amt as u64;
        Pin::new(&mut self.inner).consume(amt);
    }
}
