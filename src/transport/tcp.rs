//! Opening a TCP connection: resolve, try each address, turn Nagle off.

use std::io;
use std::net::SocketAddr;

use async_std::net::{TcpStream, ToSocketAddrs};
use surf::http::url::Host;

use super::TransportError;

/// Connects to `host:port`, trying each resolved address in turn.
///
/// Nagle's algorithm is turned off: with it, each request on a reused connection waits
/// on the server's delayed ACK, about 40 ms (measured).
pub(crate) async fn connect(host: &Host<String>, port: u16) -> Result<TcpStream, TransportError> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Domain(name) => (name.as_str(), port)
            .to_socket_addrs()
            .await
            .map_err(|e| TransportError::connect(format!("could not resolve host `{name}` ({e})")))?
            .collect(),
    };
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|e| {
                    TransportError::connect(format!("could not set TCP_NODELAY on {addr} ({e})"))
                })?;
                return Ok(stream);
            }
            Err(e) => last_error = Some((addr, e)),
        }
    }
    Err(TransportError::connect(match last_error {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {addr}")
        }
        Some((addr, e)) => format!("could not connect to {addr} ({e})"),
        None => format!("host `{host}` resolved to no address"),
    }))
}
