//! TLS for `https://`: rustls with ring's cryptography by default, or the platform's
//! library (OpenSSL on Linux) with the `native-tls` feature. Either trusts the system's
//! roots plus the client's extra ones.

use super::conn::Tcp;
use super::TransportError;

#[cfg(not(feature = "native-tls"))]
pub(crate) use rustls_tls::{socket, Certificate, TlsStream};

#[cfg(feature = "native-tls")]
pub(crate) use native::{socket, Certificate, TlsStream};

/// Makes TLS handshakes trusting the system's roots plus the client's extra ones.
#[derive(Debug)]
pub(crate) struct Tls {
    /// Built once per client and shared by every connection: the system's roots are
    /// read once, not at each handshake.
    #[cfg(not(feature = "native-tls"))]
    config: std::sync::Arc<rustls::ClientConfig>,
    /// async-native-tls builds an OpenSSL context from this at each handshake, reading
    /// the system's roots again: about 50 ms per new connection (measured), which it
    /// offers no way to avoid.
    #[cfg(feature = "native-tls")]
    connector: async_native_tls::TlsConnector,
}

#[cfg(not(feature = "native-tls"))]
mod rustls_tls {
    use std::io;
    use std::sync::Arc;

    use futures_rustls::TlsConnector;
    use rustls::crypto::ring;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, RootCertStore};

    use super::{Tcp, Tls, TransportError};

    pub(crate) type TlsStream = futures_rustls::client::TlsStream<Tcp>;

    /// The socket under a TLS stream, to look at without reading through the TLS layer.
    pub(crate) fn socket(stream: &TlsStream) -> &Tcp {
        stream.get_ref().0
    }

    /// The roots of one PEM text given to `add_root_certificate`: every certificate in
    /// it, each checked to be usable as a trust anchor.
    pub(crate) struct Certificate(RootCertStore);

    impl Certificate {
        pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, Box<dyn std::error::Error>> {
            let mut roots = RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(pem) {
                roots.add(der?)?;
            }
            if roots.is_empty() {
                return Err("no CERTIFICATE section found".into());
            }
            Ok(Certificate(roots))
        }
    }

    impl Tls {
        pub(crate) fn new(extra_roots: Vec<Certificate>) -> Self {
            let mut roots = RootCertStore::empty();
            // A system without roots, or with some this crate cannot read, is no error:
            // the client's own roots may be all it needs.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            for Certificate(extra) in extra_roots {
                roots.roots.extend(extra.roots);
            }
            // The provider is named rather than taken from the process default, which is
            // ambiguous (and panics) when another crate in the program enables aws-lc-rs.
            let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls' default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Tls {
                config: Arc::new(config),
            }
        }

        /// Runs the handshake with `name` (a host name, or an IP address written bare)
        /// over `tcp`. An untrusted certificate is told from other failures by the type
        /// of rustls' error.
        pub(crate) async fn handshake(
            &self,
            name: &str,
            tcp: Tcp,
        ) -> Result<TlsStream, TransportError> {
            let server = ServerName::try_from(name.to_owned()).map_err(|e| {
                TransportError::connect(format!("`{name}` is not a name TLS can check ({e})"))
                    .caused_by(e)
            })?;
            let connector = TlsConnector::from(self.config.clone());
            connector.connect(server, tcp).await.map_err(|err| {
                let message = match tls_error(&err) {
                    Some(rustls::Error::InvalidCertificate(_)) => {
                        format!("the server's certificate for `{name}` is not trusted ({err})")
                    }
                    _ => format!("the TLS handshake with `{name}` failed ({err})"),
                };
                TransportError::connect(message).caused_by(err)
            })
        }
    }

    /// The rustls error inside an I/O error, where futures-rustls puts it.
    fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
        err.get_ref()?.downcast_ref()
    }
}

#[cfg(feature = "native-tls")]
mod native {
    use super::{Tcp, Tls, TransportError};

    pub(crate) type TlsStream = async_native_tls::TlsStream<Tcp>;

    /// The socket under a TLS stream, to look at without reading through the TLS layer.
    pub(crate) fn socket(stream: &TlsStream) -> &Tcp {
        stream.get_ref()
    }

    /// A root given to `add_root_certificate`: the first certificate of its PEM text.
    pub(crate) struct Certificate(async_native_tls::Certificate);

    impl Certificate {
        pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, async_native_tls::Error> {
            async_native_tls::Certificate::from_pem(pem).map(Certificate)
        }
    }

    impl Tls {
        pub(crate) fn new(extra_roots: Vec<Certificate>) -> Self {
            let connector = extra_roots.into_iter().fold(
                async_native_tls::TlsConnector::new(),
                |connector, Certificate(root)| connector.add_root_certificate(root),
            );
            Tls { connector }
        }

        /// Runs the handshake with `name` (a host name, or an IP address written bare)
        /// over `tcp`. native-tls gives no typed way to tell an untrusted certificate
        /// from other failures, so all are said alike; OpenSSL's detail tells which.
        pub(crate) async fn handshake(
            &self,
            name: &str,
            tcp: Tcp,
        ) -> Result<TlsStream, TransportError> {
            self.connector.connect(name, tcp).await.map_err(|err| {
                TransportError::connect(format!("the TLS handshake with `{name}` failed ({err})"))
                    .caused_by(err)
            })
        }
    }
}
