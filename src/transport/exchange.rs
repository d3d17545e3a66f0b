//! One request and reply on a connection: the request written in one piece, no buffer
//! held while the server works, and guards against two flaws of async-h1 that would
//! otherwise let a call hang or hold unbounded memory.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http_client::{Error as HttpError, Request, Response};

use super::conn::Conn;

/// The most a connection may yield before the reply head has been parsed. async-h1
/// checks its own 8 KiB head limit only at line ends, so a reply with no line break (a
/// binary stream on the wrong port) was buffered whole, and since reading never yielded
/// the timeout could not cut it short (measured: 1.5 GiB held, a 3 s timeout overrun to
/// 6 s). A real head takes at most 8 KiB, plus one 8 KiB read ahead by async-h1's buffer.
const HEAD_READ_LIMIT: u64 = 64 * 1024;

/// The error inside the `io::Error` an [`ExchangeStream`] fails with once the head has
/// passed [`HEAD_READ_LIMIT`].
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

/// A connection handle for one exchange. Clones share its state, so the handle async-h1
/// keeps inside the response body sees what the transport set.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeStream {
    conn: Conn,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes the head may still take; `u64::MAX` once the head has been read.
    head_budget: AtomicU64,
    /// Whether the socket's last read was pending, i.e. it will wake the reader.
    socket_pending: AtomicBool,
}

impl ExchangeStream {
    pub(crate) fn new(conn: Conn) -> Self {
        let state = State {
            head_budget: AtomicU64::new(HEAD_READ_LIMIT),
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
    }
}

impl AsyncRead for ExchangeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let budget = self.state.head_budget.load(Ordering::Relaxed);
        if budget == 0 {
            return Poll::Ready(Err(io::Error::other(HeadTooLarge)));
        }
        let polled = Pin::new(&mut self.conn).poll_read(cx, buf);
        self.state
            .socket_pending
            .store(polled.is_pending(), Ordering::Relaxed);
        let n = ready!(polled)?;
        if budget != u64::MAX {
            // One request uses a connection at a time, so no other reader races this.
            self.state
                .head_budget
                .store(budget.saturating_sub(n as u64), Ordering::Relaxed);
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
