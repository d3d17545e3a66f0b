//! TLS through the system's OpenSSL (native-tls), with extra trusted roots.

use async_native_tls::{Certificate, TlsConnector, TlsStream};

use super::conn::Tcp;
use super::TransportError;

/// Makes TLS handshakes trusting the system's roots plus the client's extra ones.
#[derive(Debug)]
pub(crate) struct Tls {
    connector: TlsConnector,
}

impl Tls {
    pub(crate) fn new(extra_roots: Vec<Certificate>) -> Self {
        let connector = extra_roots
            .into_iter()
            .fold(TlsConnector::new(), TlsConnector::add_root_certificate);
        Tls { connector }
    }

    /// Runs the handshake for `domain` over `tcp`; an untrusted certificate is said so.
    pub(crate) async fn handshake(
        &self,
        domain: &str,
        tcp: Tcp,
    ) -> Result<TlsStream<Tcp>, TransportError> {
        self.connector.connect(domain, tcp).await.map_err(|e| {
            let detail = e.to_string();
            if detail.contains("certificate verify failed") {
                TransportError::connect(format!(
                    "the server's certificate for `{domain}` is not trusted (TLS handshake: {detail})"
                ))
            } else {
                TransportError::connect(format!("the TLS handshake with `{domain}` failed ({detail})"))
            }
        })
    }
}
