//! One open connection, plain or TLS.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_io::Async;
use futures::io::{AsyncRead, AsyncWrite};
use futures::ready;

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

/// A connection: one request uses it at a time, and the pool keeps it (with its read
/// buffer, as a [`Wire`](super::wire::Wire)) in between.
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

    /// Waits until the socket has something to read (or was closed), reading nothing.
    /// At full speed a reply is almost never there the moment its request has left:
    /// reading at once would fail with "would block" (a system call) before the same
    /// wait.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Conn::Plain(Tcp(tcp)) => tcp.readable().await,
            // rustls may hold decrypted bytes already, which only a read finds.
            Conn::Tls(_) => Ok(()),
        }
    }

    /// Whether an idle connection can no longer carry a request: the server closed it,
    /// or sent something unasked. Checks without waiting.
    pub(crate) fn is_stale(&self) -> bool {
        let Tcp(tcp) = match self {
            Conn::Plain(tcp) => tcp.clone(),
            Conn::Tls(stream) => tls::socket(&lock(stream)).clone(),
        };
        let mut byte = [0u8; 1];
        // A peek on the non-blocking socket itself, not through the reactor: waiting is
        // not wanted, and going through async-io would register interest in the socket
        // (an epoll_ctl) only to drop it. "Would block" is the only healthy answer.
        !matches!(
            tcp.get_ref().peek(&mut byte),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
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
                ready!(Pin::new(&mut *stream).poll_flush(cx))?;
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

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::time::Duration;

    use async_io::Async;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use socket2::{Domain, Socket, Type};

    use super::{Conn, Tcp};
    use crate::transport::tls::{Certificate, Tls};

    /// A TLS server for one connection that reads `expect` bytes 4 KiB at a time, with a
    /// pause between reads so that the client finds its socket full, then says `done`.
    fn slow_reader(expect: usize) -> (SocketAddr, String) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key.into())
        .unwrap();
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(config));
        // A small receive window: on loopback the receiver's buffer, not the sender's,
        // is what a write fills.
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        listener.listen(1).unwrap();
        let listener = std::net::TcpListener::from(listener);
        let addr = listener.local_addr().unwrap();
        let listener = async_std::net::TcpListener::from(listener);
        async_std::task::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(stream).await.unwrap();
            let mut chunk = [0u8; 4096];
            let mut received = 0;
            while received < expect {
                async_std::task::sleep(Duration::from_millis(1)).await;
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received += n,
                }
            }
            let _ = tls.write_all(b"done").await;
            let _ = tls.flush().await;
        });
        (addr, made.cert.pem())
    }

    #[test]
    fn a_read_first_sends_what_the_tls_layer_still_holds_of_a_write() {
        const BODY: usize = 256 * 1024;
        let (addr, pem) = slow_reader(BODY);
        async_std::task::block_on(async {
            // A small send buffer fills with less than rustls accepts into its own, so
            // the end of the body is left in rustls when `write_all` returns. Without the
            // flush in `poll_read` this waited out its timeout in 5 runs of 5 (measured).
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_send_buffer_size(4096).unwrap();
            socket.connect(&addr.into()).unwrap();
            let tcp = Tcp::new(Async::new(std::net::TcpStream::from(socket)).unwrap());
            let tls = Tls::new(vec![Certificate::from_pem(pem.as_bytes()).unwrap()]);
            let mut conn = Conn::tls(tls.handshake("127.0.0.1", tcp).await.unwrap());
            conn.write_all(&vec![b'x'; BODY]).await.unwrap();
            let mut reply = [0u8; 4];
            let read = async_std::future::timeout(Duration::from_secs(10), async {
                conn.read_exact(&mut reply).await
            });
            assert!(
                matches!(read.await, Ok(Ok(()))),
                "the server got the whole body"
            );
            assert_eq!(&reply, b"done");
        });
    }
}
