//! One open connection, plain or TLS.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_io::Async;
use futures::io::{AsyncRead, AsyncWrite};
use futures::{ready, FutureExt};

use super::tls::{self, TlsStream};

/// A TCP socket on async-io's reactor (the one async-std runs on), shared by handles.
#[derive(Debug, Clone)]
pub(crate) struct Tcp(Arc<Async<std::net::TcpStream>>);

impl Tcp {
    pub(crate) fn new(socket: Async<std::net::TcpStream>) -> Self {
        Tcp(Arc::new(socket))
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_close(cx)
    }
}

/// A connection: one request uses it at a time, and the pool keeps it in between.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(Tcp),
    // Behind a lock only so that `Conn` is `Sync`, as the transport's futures must be;
    // one request uses a connection at a time, so the lock is never contended.
    Tls(Arc<Mutex<TlsStream>>),
}

impl Conn {
    pub(crate) fn tls(stream: TlsStream) -> Self {
        Conn::Tls(Arc::new(Mutex::new(stream)))
    }

    /// Whether an idle connection can no longer carry a request: the server closed it,
    /// or sent something unasked. Checks without waiting.
    pub(crate) fn is_stale(&self) -> bool {
        let Tcp(tcp) = match self {
            Conn::Plain(tcp) => tcp.clone(),
            Conn::Tls(stream) => tls::socket(&lock(stream)).clone(),
        };
        let mut byte = [0u8; 1];
        // Nothing to read yet (the future is pending) is the only healthy answer.
        tcp.peek(&mut byte).now_or_never().is_some()
    }

    /// Waits until a plain connection has something to read (or is closed), without a
    /// buffer. A TLS connection returns at once: its layer may hold decrypted bytes
    /// already.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if let Conn::Plain(Tcp(tcp)) = self {
            let mut byte = [0u8; 1];
            // An error (a reset) is reported once, so it is passed on; an end of stream is
            // left for the head's reader to report.
            tcp.peek(&mut byte).await?;
        }
        Ok(())
    }
}

fn lock(tls: &Mutex<TlsStream>) -> MutexGuard<'_, TlsStream> {
    // A panic while holding the lock cannot leave the stream half-updated in a way the
    // next caller could not see as an I/O error, so a poisoned lock is still usable.
    tls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => {
                let mut stream = lock(tls);
                // rustls keeps what the socket would not take yet of a write, and sends
                // it only on a flush or the next write: the end of a request written with
                // `write_all` would wait there while we wait for the reply.
                let _ = ready!(Poll::Ready(Ok::<(), io::Error>(())));
                Pin::new(&mut *stream).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(&mut *lock(tls)).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(&mut *lock(tls)).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_close(cx),
            Conn::Tls(tls) => Pin::new(&mut *lock(tls)).poll_close(cx),
        }
    }
}
