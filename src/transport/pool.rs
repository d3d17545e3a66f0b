//! Idle keep-alive connections, per origin: a connection comes back here only once its
//! reply was read to the end, at most a few per origin are kept, and none past its idle
//! timeout.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use surf::http::url::Host;

use super::wire::Wire;

/// Where a connection goes: scheme, host and port. Connections are only reused for the
/// same origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) tls: bool,
    pub(crate) host: Host<String>,
    pub(crate) port: u16,
}

/// Idle connections by origin. There is no cap on connections in use: every call of a
/// batch that finds no idle connection opens its own. Idle ones are capped per origin,
/// so a batch of 5,000 calls does not leave 5,000 sockets open after it.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    idle: Arc<Mutex<Idle>>,
    idle_timeout: Duration,
    max_per_origin: usize,
}

#[derive(Debug, Default)]
struct Idle {
    /// foldhash (seeded at random per map), not SipHash: the map is looked up twice
    /// per call.
    by_origin: foldhash::HashMap<Origin, VecDeque<Parked>>,
    /// When every origin was last swept of expired connections.
    swept: Option<Instant>,
}

#[derive(Debug)]
struct Parked {
    wire: Wire,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_per_origin: usize) -> Self {
        Pool {
            idle: Arc::default(),
            idle_timeout,
            max_per_origin,
        }
    }

    /// An idle connection to `origin` that is still open, if there is one. The most
    /// recently used comes first: it is the least likely to have been closed by the server.
    pub(crate) fn checkout(&self, origin: &Origin) -> Option<Wire> {
        loop {
            let idle = {
                let mut idle = self.lock();
                // An origin left with none keeps its (empty) place until the next sweep:
                // under a steady load its list empties and fills all the time.
                idle.by_origin.get_mut(origin)?.pop_back()?
            };
            // Checked outside the lock; a stale connection is simply dropped (closed).
            if idle.since.elapsed() < self.idle_timeout && !idle.wire.is_stale() {
                return Some(idle.wire);
            }
        }
    }

    /// Keeps `wire` for the next call to `origin`; the oldest idle connection to that
    /// origin is closed when it already has its share. There is no task to sweep in the
    /// background (the pool must work under any executor), so this is also where
    /// expired connections are closed: this origin's at every check-in, all origins'
    /// at most once per idle timeout (as ureq's pool does on each use).
    pub(crate) fn checkin(&self, origin: &Origin, wire: Wire) {
        if self.idle_timeout.is_zero() || self.max_per_origin == 0 {
            return;
        }
        let now = Instant::now();
        let fresh = |parked: &Parked| now.duration_since(parked.since) < self.idle_timeout;
        let mut idle = self.lock();
        if idle
            .swept
            .is_none_or(|at| now.duration_since(at) >= self.idle_timeout)
        {
            idle.by_origin.retain(|_, conns| {
                conns.retain(fresh);
                !conns.is_empty()
            });
            idle.swept = Some(now);
        }
        let park = |conns: &mut VecDeque<Parked>| {
            while conns.front().is_some_and(|oldest| !fresh(oldest))
                || conns.len() >= self.max_per_origin
            {
                conns.pop_front();
            }
            conns.push_back(Parked { wire, since: now });
        };
        // Looked up before inserting: the origin is nearly always there already, and
        // `entry` would need an owned key (its host name copied) at every check-in.
        match idle.by_origin.get_mut(origin) {
            Some(conns) => park(conns),
            None => {
                let mut conns = VecDeque::new();
                park(&mut conns);
                idle.by_origin.insert(origin.clone(), conns);
            }
        }
    }

    /// How many idle connections are kept, over all origins.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.lock().by_origin.values().map(VecDeque::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The map is valid after any panic in a holder (each update is one call), so a
        // poisoned lock is still usable.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::{Conn, Tcp};
    use super::*;
    use async_io::Async;

    /// A real loopback connection: the pool checks idle ones with a peek.
    fn loopback(listener: &std::net::TcpListener) -> (Wire, std::net::TcpStream) {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let conn = Conn::Plain(Tcp::new(Async::new(client).unwrap()));
        (Wire::new(conn), server)
    }

    fn origin(port: u16) -> Origin {
        Origin {
            tls: false,
            host: Host::Domain("localhost".to_owned()),
            port,
        }
    }

    #[test]
    fn each_origin_keeps_at_most_its_share_and_the_newest_comes_out_first() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = Pool::new(Duration::from_secs(60), 2);
        let mut servers = Vec::new();
        for port in [1, 1, 1, 2] {
            let (conn, server) = loopback(&listener);
            servers.push(server);
            pool.checkin(&origin(port), conn);
        }
        assert_eq!(pool.idle_count(), 3);
        assert!(pool.checkout(&origin(1)).is_some());
        assert!(pool.checkout(&origin(1)).is_some());
        assert!(pool.checkout(&origin(1)).is_none());
    }

    #[test]
    fn a_connection_the_server_closed_is_not_handed_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = Pool::new(Duration::from_secs(60), 4);
        let (conn, server) = loopback(&listener);
        pool.checkin(&origin(1), conn);
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        assert!(pool.checkout(&origin(1)).is_none());
    }

    #[test]
    fn expired_connections_of_every_origin_are_swept() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = Pool::new(Duration::from_millis(20), 4);
        let (a, _server_a) = loopback(&listener);
        pool.checkin(&origin(1), a);
        std::thread::sleep(Duration::from_millis(40));
        let (b, _server_b) = loopback(&listener);
        pool.checkin(&origin(2), b);
        assert_eq!(pool.idle_count(), 1);
    }
}
