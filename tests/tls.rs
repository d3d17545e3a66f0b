//! `https://` through the transport: a trusted certificate works, an untrusted one is a
//! `connect` error that says so. The server is a local TLS listener with a throwaway
//! self-signed certificate made by `openssl` for the test.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_std::io::prelude::*;
use common::{read_request, RawServer};
use fanout::{Client, Endpoint, ErrorKind};
use serde_json::json;

/// A self-signed certificate for 127.0.0.1, ::1 and localhost, and its PKCS#8 key, as PEM.
fn self_signed_certificate() -> (Vec<u8>, Vec<u8>) {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let serial = MADE.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("fanout-tls-{}-{serial}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (cert, key): (PathBuf, PathBuf) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=fanout test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (the openssl command line tool must be installed)");
    assert!(
        status.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let pems = (
        std::fs::read(&cert).expect("cert.pem"),
        std::fs::read(&key).expect("key.pem"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    pems
}

/// A TLS server on 127.0.0.1 answering every request on a connection with a small JSON
/// reply.
fn tls_server(cert: &[u8], key: &[u8]) -> RawServer {
    tls_server_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), cert, key)
}

/// The same on `addr`.
fn tls_server_on(addr: SocketAddr, cert: &[u8], key: &[u8]) -> RawServer {
    let identity = native_tls::Identity::from_pkcs8(cert, key).expect("a valid identity");
    let acceptor = native_tls::TlsAcceptor::new(identity).expect("a TLS acceptor");
    let acceptor = Arc::new(async_native_tls::TlsAcceptor::from(acceptor));
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

#[test]
fn https_works_when_the_client_trusts_the_certificate_and_reuses_the_connection() {
    let (cert, key) = self_signed_certificate();
    let server = tls_server(&cert, &key);
    let client = Client::builder()
        .add_root_certificate(cert)
        .build()
        .expect("a valid certificate");
    let endpoint = Endpoint::get("secure", format!("https://{}/", server.addr()));
    for _ in 0..3 {
        let outcome = async_std::task::block_on(client.call(&endpoint));
        assert_eq!(
            outcome.reply().map(|r| r.body.clone()),
            Some(json!({"secure": true})),
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
    let (cert, key) = self_signed_certificate();
    let server = tls_server(&cert, &key);
    let endpoint = Endpoint::get("secure", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("the certificate is not trusted");
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string().starts_with(
            "secure: the server's certificate for `127.0.0.1` is not trusted (TLS handshake: "
        ),
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
    let (cert, key) = self_signed_certificate();
    let server = tls_server_on(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)), &cert, &key);
    let client = Client::builder()
        .add_root_certificate(cert)
        .build()
        .expect("a valid certificate");
    let endpoint = Endpoint::get("secure6", format!("https://{}/", server.addr()));
    let outcome = async_std::task::block_on(client.call(&endpoint));
    assert_eq!(
        outcome.reply().map(|r| r.body.clone()),
        Some(json!({"secure": true})),
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
        .timeout(std::time::Duration::from_millis(300));
    let outcome = async_std::task::block_on(Client::new().call(&endpoint));
    let err = outcome.error().expect("no handshake, no reply");
    assert_eq!(
        err.to_string(),
        "mute: timed out after 0.3 s while connecting"
    );
}
