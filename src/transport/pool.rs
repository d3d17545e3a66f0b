//! Idle keep-alive connections, per origin, and the body wrapper that gives a connection
//! back only once its response body has been read to the end.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncBufRead, AsyncRead};
use surf::http::url::Host;

use super::conn::Conn;

/// Where a connection goes: scheme, host and port. Connections are only reused for the
/// same origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) tls: bool,
    pub(crate) host: Host<String>,
    pub(crate) port: u16,
}

/// Idle connections by origin. There is no cap on connections per host: every call of a
/// batch that finds no idle connection opens its own.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    idle: Arc<Mutex<HashMap<Origin, VecDeque<Idle>>>>,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration) -> Self {
        Pool {
            idle: Arc::default(),
            idle_timeout,
        }
    }

    /// An idle connection to `origin` that is still open, if there is one. The most
    /// recently used comes first: it is the least likely to have been closed by the server.
    pub(crate) fn checkout(&self, origin: &Origin) -> Option<Conn> {
        loop {
            let idle = {
                let mut idle = self.lock();
                let conns = idle.get_mut(origin)?;
                let found = conns.pop_back();
                if conns.is_empty() {
                    idle.remove(origin);
                }
                found?
            };
            // Checked outside the lock; a stale connection is simply dropped (closed).
            if idle.since.elapsed() < self.idle_timeout && !idle.conn.is_stale() {
                return Some(idle.conn);
            }
        }
    }

    /// Keeps `conn` for the next call to `origin`, and closes that origin's connections
    /// that have been idle too long. There is no task to sweep in the background (the
    /// pool must work under any executor), so this is where they are found; the oldest
    /// are at the front.
    pub(crate) fn checkin(&self, origin: Origin, conn: Conn) {
        if self.idle_timeout.is_zero() {
            return;
        }
        let since = Instant::now();
        let mut idle = self.lock();
        let conns = idle.entry(origin).or_default();
        while conns
            .front()
            .is_some_and(|oldest| oldest.since.elapsed() >= self.idle_timeout)
        {
            conns.pop_front();
        }
        conns.push_back(Idle { conn, since });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, VecDeque<Idle>>> {
        // The map is valid after any panic in a holder (each update is one call), so a
        // poisoned lock is still usable.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A response body that checks its connection back into the pool when it reaches its
/// end. Dropped before that (half-read), it takes the connection with it: the unread
/// rest of the body would corrupt the next response.
#[derive(Debug)]
pub(crate) struct ReturnOnEnd<R> {
    inner: R,
    home: Option<(Pool, Origin, Conn)>,
}

impl<R> ReturnOnEnd<R> {
    /// `home` is where the connection goes back to; `None` when it must not be reused.
    pub(crate) fn new(inner: R, home: Option<(Pool, Origin, Conn)>) -> Self {
        ReturnOnEnd { inner, home }
    }
}

/// Gives the connection back, the first time the body reports its end.
fn reached_end(home: &mut Option<(Pool, Origin, Conn)>) {
    if let Some((pool, origin, conn)) = home.take() {
        pool.checkin(origin, conn);
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReturnOnEnd<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if n == 0 && !buf.is_empty() {
            reached_end(&mut self.home);
        }
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for ReturnOnEnd<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let chunk = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
        if chunk.is_empty() {
            reached_end(&mut this.home);
        }
        Poll::Ready(Ok(chunk))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt);
    }
}
