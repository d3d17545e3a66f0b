//! One request and reply on a connection: the request written in one piece, no buffer
//! held while the server works, and guards against two flaws of async-h1 that would
//! otherwise let a call hang or hold unbounded memory.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http_client::{Error as HttpError, Request, Response};

use super::conn::Conn;

/// The most a connection may yield before the reply head has been parsed. async-h1
/// checks its own 8 KiB head limit only at line ends, so a reply with no line break (a
/// binary stream on the wrong port) was buffered whole, and since reading never yielded
/// the timeout could not cut it short (measured: 1.5 GiB held, a 3 s timeout overrun to
/// 6 s). A real head takes at most 8 KiB, plus one 8 KiB read ahead by async-h1's buffer.
const HEAD_READ_LIMIT: u64 = 64 * 1024;

/// How much a connection may yield without a pause before the reader is made to yield.
/// async-h1's readers loop for as long as bytes come (a chunk size of endless zeros is
/// one such loop), and a future that never returns cannot be timed out, nor can the other
/// calls polled by the same task make progress.
const YIELD_EVERY: u64 = 256 * 1024;

/// Why a reply head was refused before async-h1 finished reading it.
#[derive(Debug)]
pub(crate) enum BadHead {
    /// Longer than [`HEAD_READ_LIMIT`].
    TooLarge,
    /// A byte over 0x7F: http-types panics on a header value that is not ASCII.
    NotAscii,
}

impl fmt::Display for BadHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadHead::TooLarge => write!(
                f,
                "the reply head did not end within {} KiB",
                HEAD_READ_LIMIT / 1024
            ),
            BadHead::NotAscii => f.write_str("the reply head has a byte that is not ASCII"),
        }
    }
}

impl std::error::Error for BadHead {}

/// A connection handle for one exchange. Clones share its state, so the handle async-h1
/// keeps inside the response body sees what the transport set.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeStream {
    conn: Conn,
    state: Arc<State>,
}

// One request uses a connection at a time, so nothing races on these: they are atomics
// only because the handles are shared.
#[derive(Debug)]
struct State {
    /// Bytes the head may still take; `u64::MAX` once the head has been read.
    head_budget: AtomicU64,
    /// Where the scan for the head's end stands (see [`scan_head`]).
    head_scan: AtomicU8,
    /// Bytes read since the socket last had nothing to give.
    unyielded: AtomicU64,
    /// Whether the socket's last read was pending, i.e. it will wake the reader.
    socket_pending: AtomicBool,
}

impl ExchangeStream {
    pub(crate) fn new(conn: Conn) -> Self {
        let state = State {
            head_budget: AtomicU64::new(HEAD_READ_LIMIT),
            head_scan: AtomicU8::new(IN_LINE),
            unyielded: AtomicU64::new(0),
            socket_pending: AtomicBool::new(false),
        };
        ExchangeStream {
            conn,
            state: Arc::new(state),
        }
    }

    /// Lifts the head bound: the body that follows has its own cap.
    pub(crate) fn head_read(&self) {
        self.state.head_budget.store(u64::MAX, Ordering::Relaxed);
        self.state.head_scan.store(HEAD_ENDED, Ordering::Relaxed);
    }
}

// The states of `scan_head`.
const IN_LINE: u8 = 0;
const LINE_START: u8 = 1;
const LINE_START_CR: u8 = 2;
const HEAD_ENDED: u8 = 3;

/// Follows `bytes` through the reply head, ending where async-h1 ends it (an empty line,
/// `\r\n` or `\n`), and refuses a non-ASCII byte before that end.
fn scan_head(mut state: u8, bytes: &[u8]) -> Result<u8, BadHead> {
    for &byte in bytes {
        state = match (state, byte) {
            (HEAD_ENDED, _) => return Ok(HEAD_ENDED),
            (LINE_START | LINE_START_CR, b'\n') => HEAD_ENDED,
            (_, b'\n') => LINE_START,
            (LINE_START, b'\r') => LINE_START_CR,
            (IN_LINE, b'\r') => IN_LINE,
            (_, 0x80..) => return Err(BadHead::NotAscii),
            _ => IN_LINE,
        };
    }
    Ok(state)
}

impl AsyncRead for ExchangeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let state = &self.state;
        if state.unyielded.load(Ordering::Relaxed) >= YIELD_EVERY {
            state.unyielded.store(0, Ordering::Relaxed);
            state.socket_pending.store(false, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let budget = state.head_budget.load(Ordering::Relaxed);
        if budget == 0 {
            return Poll::Ready(Err(io::Error::other(BadHead::TooLarge)));
        }
        let polled = Pin::new(&mut self.conn).poll_read(cx, buf);
        let state = &self.state;
        state
            .socket_pending
            .store(polled.is_pending(), Ordering::Relaxed);
        let Poll::Ready(read) = polled else {
            state.unyielded.store(0, Ordering::Relaxed);
            return Poll::Pending;
        };
        let n = read?;
        state.unyielded.fetch_add(n as u64, Ordering::Relaxed);
        if budget != u64::MAX {
            state
                .head_budget
                .store(budget.saturating_sub(n as u64), Ordering::Relaxed);
            let scanned = scan_head(state.head_scan.load(Ordering::Relaxed), &buf[..n])
                .map_err(io::Error::other)?;
            state.head_scan.store(scanned, Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for ExchangeStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.conn).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_close(cx)
    }
}

/// Writes the request in one piece, waits for the reply without holding a buffer, then
/// reads its head. `async_h1::client::connect` would write head and body in two writes
/// (two segments, two server wake-ups) and hold its 8 KiB read buffer and 4 KiB header
/// array for the whole wait; here they exist only once the reply has started to arrive.
pub(crate) async fn exchange(
    mut stream: ExchangeStream,
    req: Request,
) -> Result<Response, HttpError> {
    // Room for a typical head, so encoding does not regrow the buffer.
    let mut encoded = Vec::with_capacity(512 + req.len().unwrap_or(0));
    async_h1::client::Encoder::new(req)
        .read_to_end(&mut encoded)
        .await?;
    stream.write_all(&encoded).await?;
    drop(encoded);
    stream.conn.readable().await?;
    // Boxed, so that decoding's header array takes no room in the caller's future while
    // it waits: with 5,000 calls in flight that was 31 MB (measured).
    Box::pin(async_h1::client::decode(stream)).await
}

/// Wraps the response body to restore a wakeup async-h1 loses: its chunked decoder
/// answers `Pending` without arranging a wakeup when the final chunk's trailer section
/// arrives in pieces, and the call would then sleep until its timeout. When the body is
/// pending but the socket was not, nobody will wake the reader, so it wakes itself once;
/// the next poll reaches the socket, which then does the waking.
#[derive(Debug)]
pub(crate) struct WakeGuard<R> {
    inner: R,
    stream: ExchangeStream,
}

impl<R> WakeGuard<R> {
    pub(crate) fn new(inner: R, stream: ExchangeStream) -> Self {
        WakeGuard { inner, stream }
    }
}

/// Called when the body answered `Pending`: the flag tells what the socket did during
/// that same poll.
fn wake_if_lost(stream: &ExchangeStream, cx: &mut Context<'_>) {
    if !stream.state.socket_pending.load(Ordering::Relaxed) {
        cx.waker().wake_by_ref();
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WakeGuard<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            wake_if_lost(&self.stream, cx);
        }
        polled
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for WakeGuard<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_fill_buf(cx);
        if polled.is_pending() {
            wake_if_lost(&this.stream, cx);
        }
        polled
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt);
    }
}
