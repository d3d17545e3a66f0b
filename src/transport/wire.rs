//! A connection with its read buffer, which the head parser and the body framing take
//! bytes from. The pool keeps the two together, so a reused connection reads into the
//! buffer it already has.

use futures::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::Conn;
use super::error::TransportError;

/// How much is read from the socket at first: most replies to an API call fit. The
/// buffer stays with its connection while the connection is idle in the pool, so it is
/// kept small: at most 1 KiB per idle connection (5 MB for a pool of 5,000).
const FIRST_READ: usize = 1024;

/// The most read from the socket at a time. Each read doubles the room, up to this, when
/// the last one filled it: a small reply costs a small buffer, zeroed once (zeroing a
/// 16 KiB buffer for every 200-byte reply showed as 3% of the client's time in a
/// profile), and a large body is still read in large pieces.
const MAX_READ: usize = 64 * 1024;

/// How much may be read without a pause before the reader yields to the executor. A
/// fast server could otherwise keep the read loop busy for as long as it sends (an
/// endless body arrives faster than it is refused), and a future that never returns
/// `Pending` cannot be timed out, nor can the other calls polled by the same task move.
const YIELD_EVERY: usize = 256 * 1024;

/// A connection with the bytes read from it but not yet used.
#[derive(Debug)]
pub(crate) struct Wire {
    conn: Conn,
    buf: Vec<u8>,
    start: usize,
    /// How much the next read asks for.
    read_size: usize,
    since_yield: usize,
    received: u64,
}

impl Wire {
    pub(crate) fn new(conn: Conn) -> Self {
        Wire {
            conn,
            buf: Vec::new(),
            start: 0,
            read_size: FIRST_READ,
            since_yield: 0,
            received: 0,
        }
    }

    /// Writes all of `bytes` to the connection.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(bytes).await
    }

    /// Waits until the connection has something to read (see [`Conn::readable`]).
    pub(crate) async fn readable(&self) -> std::io::Result<()> {
        self.conn.readable().await
    }

    /// The bytes read but not yet used.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Marks the first `n` buffered bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes onto the end of the buffer, at most `room` of them (and never
    /// none): the number read, 0 at the end of the stream. `doing` names the phase in
    /// the error a failed read becomes.
    pub(crate) async fn read_more(
        &mut self,
        room: usize,
        doing: &str,
    ) -> Result<usize, TransportError> {
        if self.since_yield >= YIELD_EVERY {
            self.since_yield = 0;
            async_std::task::yield_now().await;
        }
        if self.start > 0 {
            // Keep what is unused at the front, so the buffer does not grow with the reply.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        let asked = room.clamp(1, self.read_size);
        self.buf.resize(len + asked, 0);
        let read = match self.conn.read(&mut self.buf[len..]).await {
            // rustls reports a TLS connection closed without its close_notify alert as
            // UnexpectedEof. Many servers close that way after a body that ends with the
            // connection; browsers, curl and aiohttp read it as the end, and so do we.
            // A body with a length or chunks still ends in an error when cut short.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            read => read,
        };
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        if n == asked {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        let n = read.map_err(|e| TransportError::io(doing, e))?;
        self.since_yield += n;
        self.received += n as u64;
        Ok(n)
    }

    /// Whether not a byte came from the server yet.
    pub(crate) fn received_nothing(&self) -> bool {
        self.received == 0
    }

    /// The connection, for the pool, once the reply is whole: `None` when bytes the
    /// server sent past the reply are waiting (they would be read as the next reply).
    /// Its buffer goes along, emptied, unless a large reply grew it: an idle connection
    /// holds no more than a first read's room.
    pub(crate) fn into_idle(mut self) -> Option<Wire> {
        if !self.buffered().is_empty() {
            return None;
        }
        if self.buf.capacity() > FIRST_READ {
            self.buf = Vec::new();
        }
        self.buf.clear();
        self.start = 0;
        self.read_size = FIRST_READ;
        self.since_yield = 0;
        self.received = 0;
        Some(self)
    }

    /// Whether an idle connection can no longer carry a request (see [`Conn::is_stale`]).
    pub(crate) fn is_stale(&self) -> bool {
        self.conn.is_stale()
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::Tcp;
    use super::*;
    use async_io::Async;
    use std::io::Write;

    #[test]
    fn an_idle_connection_keeps_a_small_buffer_and_gives_up_a_grown_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut wire = Wire::new(Conn::Plain(Tcp::new(Async::new(client).unwrap())));
        // A reply of 8 KiB, read whole: the buffer doubles from 1 KiB as reads fill it.
        server.write_all(&[b'x'; 8 * 1024]).unwrap();
        futures::executor::block_on(async {
            while wire.buffered().len() < 8 * 1024 {
                wire.read_more(usize::MAX, "reading").await.unwrap();
            }
        });
        assert!(wire.buf.capacity() > FIRST_READ);
        wire.consume(8 * 1024);
        let idle = wire.into_idle().expect("nothing left unread");
        assert_eq!((idle.buf.capacity(), idle.received), (0, 0));
        // Bytes left unread would be taken for the next reply: no reuse.
        server.write_all(b"late").unwrap();
        let mut wire = idle;
        futures::executor::block_on(wire.read_more(usize::MAX, "reading")).unwrap();
        assert!(wire.buf.capacity() <= FIRST_READ);
        assert!(wire.into_idle().is_none());
    }
}
