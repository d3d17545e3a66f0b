//! The reply's length rules: a head that ends within a bound, a body never more than the
//! cap and never less than announced.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite};

/// The most a connection may yield before the reply head has been parsed. async-h1
/// checks its own 8 KiB head limit only at line ends, so a reply with no line break (a
/// binary stream on the wrong port) was buffered whole, and since reading never yielded
/// the timeout could not cut it short (measured: 1.5 GiB held, a 3 s timeout overrun to
/// 6 s). A real head takes at most 8 KiB, plus one 8 KiB read ahead by async-h1's buffer.
const HEAD_READ_LIMIT: u64 = 64 * 1024;

/// The error inside the `io::Error` a [`HeadLimited`] fails with once the bound is passed.
#[derive(Debug)]
pub(crate) struct HeadTooLarge;

impl fmt::Display for HeadTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the reply head did not end within {} KiB",
            HEAD_READ_LIMIT / 1024
        )
    }
}

impl std::error::Error for HeadTooLarge {}

/// A connection handle that fails reads with [`HeadTooLarge`] once more than
/// [`HEAD_READ_LIMIT`] bytes came before [`head_read`](Self::head_read) is called. Clones
/// share the count, so the handle that async-h1 keeps for the body is released too.
#[derive(Debug, Clone)]
pub(crate) struct HeadLimited<S> {
    inner: S,
    /// Bytes the head may still take; `u64::MAX` once the head has been read.
    budget: Arc<AtomicU64>,
}

impl<S> HeadLimited<S> {
    pub(crate) fn new(inner: S) -> Self {
        HeadLimited {
            inner,
            budget: Arc::new(AtomicU64::new(HEAD_READ_LIMIT)),
        }
    }

    /// Lifts the bound: the body that follows has its own cap.
    pub(crate) fn head_read(&self) {
        self.budget.store(u64::MAX, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let budget = self.budget.load(Ordering::Relaxed);
        if budget == 0 {
            return Poll::Ready(Err(io::Error::other(HeadTooLarge)));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if budget != u64::MAX {
            // One request uses a connection at a time, so no other reader races this.
            self.budget
                .store(budget.saturating_sub(n as u64), Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadLimited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

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

    /// Checks a chunk of `len` bytes from below (0: end of body) before handing it up.
    fn admit(self, len: usize) -> io::Result<()> {
        self.check_announced()?;
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
