//! `https://` through the transport: a trusted certificate works, an untrusted one is a
//! `connect` error that says so. The server is a local rustls listener with a throwaway
//! self-signed certificate made by rcgen for each test: no OpenSSL anywhere.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_std::io::prelude::*;
use common::{read_request, RawServer};
use fanout::{Client, Endpoint, ErrorKind};
use futures_rustls::TlsAcceptor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

/// A self-signed certificate for `names` (IP addresses become IP names), as the server
/// needs it and as PEM for the client.
struct SelfSigned {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

fn self_signed_for(names: &[&str]) -> SelfSigned {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
    SelfSigned {
        der: made.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
        pem: made.cert.pem(),
    }
}

/// A self-signed certificate for 127.0.0.1, ::1 and localhost.
fn self_signed_certificate() -> SelfSigned {
    self_signed_for(&["127.0.0.1", "::1", "localhost"])
}

/// A rustls acceptor serving `cert`.
fn tls_acceptor(cert: &SelfSigned) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::from(cert.key.clone_key()),
        )
        .expect("a valid certificate and key");
    TlsAcceptor::from(Arc::new(config))
}

/// A TLS server on 127.0.0.1 answering every request on a connection with a small JSON
/// reply.
fn tls_server(cert: &SelfSigned) -> RawServer {
    tls_server_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), cert)
}

/// The same on `addr`.
fn tls_server_on(addr: SocketAddr, cert: &SelfSigned) -> RawServer {
    let acceptor = tls_acceptor(cert);
    RawServer::start_on(addr, move |stream| {
        let acceptor = acceptor.clone();
        async move {
            // A client that refuses the certificate ends the handshake; nothing to serve.
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            while read_request(&mut tls).await.is_some() {
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"secure\":true}";
                if tls.write_all(reply).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
            }
        }
    })
}

fn trusting(cert: &SelfSigned) -> Client {
    Client::builder()
        .add_root_certificate(cert.pem.clone())
        .build()
        .expect("a valid certificate")
}

/// What an untrusted certificate's error starts with for `host`.
fn untrusted_prefix(endpoint: &str, host: &str) -> String {
    if cfg!(feature = "native-tls") {
        // native-tls tells no failure from another but by its text; see `transport/tls.rs`.
        format!("{endpoint}: the TLS handshake with `{host}` failed (")
    } else {
        format!("{endpoint}: the server's certificate for `{host}` is not trusted (")
    }
}

#[test]
fn https_works_when_the_client_trusts_the_certificate_and_reuses_the_connection() {
    let cert = self_signed_certificate();
    let server = tls_server(&cert);
    let client = trusting(&cert);
    let endpoint = Endpoint::get("secure", format!("https://{}/", server.addr()));
    for _ in 0..3 {
        let outcome = async_std::task::block_on(client.call(&endpoint));
        let body = outcome.reply().map(|r| r.body.clone());
        assert_eq!(
            body.as_ref().map(|b| &b["secure"]),
            Some(&json!(true)),
            "{outcome:?}"
        );
    }
    assert_eq!(
        server.connections_accepted(),
        1,
        "the TLS connection is kept alive"
    );
}

#[test]
fn an_untrusted_certificate_is_a_connect_error_that_says_so() {
    let cert = self_signed_certificate();
    let server = tls_server(&cert);
    let endpoint = Endpoint::get("secure", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("the certificate is not trusted");
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string()
            .starts_with(&untrusted_prefix("secure", "127.0.0.1")),
        "{err}"
    );
}

#[cfg(not(feature = "native-tls"))]
#[test]
fn an_untrusted_certificate_keeps_rustls_error_as_the_source() {
    let cert = self_signed_certificate();
    let server = tls_server(&cert);
    let endpoint = Endpoint::get("secure", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("the certificate is not trusted");
    let tls_error = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    assert!(
        matches!(tls_error, Some(rustls::Error::InvalidCertificate(_))),
        "{tls_error:?}"
    );
}

#[test]
fn a_trusted_certificate_for_another_name_is_not_trusted() {
    let cert = self_signed_for(&["localhost"]);
    let server = tls_server(&cert);
    let endpoint = Endpoint::get("elsewhere", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(trusting(&cert).call(&endpoint));
    let err = outcome
        .error()
        .expect("the certificate names only localhost");
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string()
            .starts_with(&untrusted_prefix("elsewhere", "127.0.0.1")),
        "{err}"
    );
}

#[test]
fn a_server_that_does_not_speak_tls_fails_the_handshake() {
    // Answers in plain HTTP at once, without waiting for a request it could read.
    let server = RawServer::start(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let endpoint = Endpoint::get("plain", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("no TLS, no reply");
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string()
            .starts_with("plain: the TLS handshake with `127.0.0.1` failed ("),
        "{err}"
    );
}

#[test]
fn a_root_certificate_that_is_not_pem_is_refused_when_building() {
    let err = Client::builder()
        .add_root_certificate(&b"not a certificate"[..])
        .build()
        .expect_err("not PEM");
    assert!(
        err.to_string()
            .starts_with("root certificate #1 is not valid PEM"),
        "{err}"
    );
}

#[test]
fn https_to_an_ipv6_address_checks_the_certificate_against_that_address() {
    let cert = self_signed_certificate();
    let server = tls_server_on(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)), &cert);
    let endpoint = Endpoint::get("secure6", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(trusting(&cert).call(&endpoint));
    let body = outcome.reply().map(|r| r.body.clone());
    assert_eq!(
        body.as_ref().map(|b| &b["secure"]),
        Some(&json!(true)),
        "{outcome:?}"
    );
}

#[test]
fn a_handshake_that_never_ends_times_out_while_connecting() {
    // Accepts TCP, then never says a word of TLS.
    let server = RawServer::start(|mut stream| async move {
        let mut sink = [0u8; 1024];
        while let Ok(1..) = async_std::io::ReadExt::read(&mut stream, &mut sink).await {}
    });
    let endpoint = Endpoint::get("mute", format!("https://{}/", server.addr()))
        .timeout(Duration::from_millis(300));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("no handshake, no reply");
    assert_eq!(
        err.to_string(),
        "mute: timed out after 0.3 s while connecting"
    );
}

#[test]
fn a_close_delimited_body_ended_without_close_notify_is_read_whole() {
    // HTTP/1.0 with no length: the body ends when the server drops the connection,
    // here without the TLS close_notify alert, as many servers do.
    let cert = self_signed_certificate();
    let acceptor = tls_acceptor(&cert);
    let server = RawServer::start(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            if read_request(&mut tls).await.is_some() {
                let reply = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"to\":\"the end\"}";
                let _ = tls.write_all(reply).await;
                let _ = tls.flush().await;
            }
            // Dropped, not closed: the TCP connection ends with no close_notify.
        }
    });
    let url = format!("https://127.0.0.1:{}/", server.addr().port());
    let outcome = async_std::task::block_on(trusting(&cert).call(&Endpoint::get("eof", url)));
    assert_eq!(
        outcome.reply().map(|r| r.body.clone()),
        Some(serde_json::json!({"to": "the end"})),
        "{outcome:?}"
    );
}
