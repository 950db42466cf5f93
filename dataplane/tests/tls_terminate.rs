//! Terminating TLS listeners (protocol TLS with `tls`, TLSRoutes): the data plane completes the
//! handshake with the listener's certificate and relays plaintext to plain TCP backends, which
//! would answer a relayed handshake with garbage; passthrough listeners may share the port.

mod common;
#[path = "common/tls_route.rs"]
mod tls_route;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Proxy, free_port, pem};
use pylon_dataplane::limits::Limits;
use pylon_dataplane::metrics::{L4Outcome as Outcome, L4Protocol};
use tls_route::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A listener `tls` block serving `example.pem` (example.com, *.example.com); `validation`
/// adds a clientValidation block (flow YAML) when given.
fn example_tls(validation: Option<&str>) -> String {
    let validation = validation.map_or(String::new(), |v| format!(", clientValidation: {v}"));
    format!(
        "{{certificates: [{{certPem: {}, keyPem: {}}}]{validation}}}",
        json_str(&pem("example.pem")),
        json_str(&pem("example.key")),
    )
}

/// One terminating listener on `port` without hostname, whose one route sends everything to
/// backend `t` at `addr`.
fn one_terminating(port: u16, tls: String, addr: std::net::SocketAddr) -> String {
    listeners_config(
        port,
        &[Listener {
            name: "term",
            hostname: None,
            tls: Some(tls),
            routes: vec![route("r", T1, "[]", &to("t"))],
        }],
        &endpoints(&[("t", &[addr])]),
    )
}

/// A client of the test CA that offers h2 and http/1.1 by ALPN, as browsers and curl do.
fn alpn_client() -> Arc<rustls::ClientConfig> {
    let mut cfg = (*client_config()).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[tokio::test]
async fn a_terminating_listener_relays_the_plaintext() {
    let t = LineBackend::tcp("t").await;
    let port = free_port();
    let p = Proxy::start(&one_terminating(port, example_tls(None), t.addr)).await;
    p.shared.access_log.store(true, Ordering::Relaxed);
    // The certificate verified for the name is the listener's: the backend has none.
    let mut tls = connect_with(port, "app.example.com", alpn_client())
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        None,
        "a relay must not agree on what it does not speak"
    );
    assert_eq!(ask(&mut tls, "hello").await, "t hello");
    assert_eq!(ask(&mut tls, "world").await, "t world");
    drop(tls);
    assert_eq!(t.received(), b"hello\nworld\n", "exactly the plaintext");
    assert_eq!(t.hits(), 1);
    let m = &p.shared.metrics;
    eventually("a relayed connection counted", || {
        m.l4_connections(L4Protocol::Tls, Outcome::Relayed) == 1
    })
    .await;
    let line = last_log_line(&p.shared).await;
    assert_eq!(line["mode"], "terminate", "{line}");
    assert_eq!(line["sni"], "app.example.com");
    assert_eq!(line["route"], "d/r");
    assert_eq!(line["backend"], t.addr.to_string());
    assert_eq!(line["outcome"], "relayed");
    // Decrypted bytes: "hello\nworld\n" in, "t hello\nt world\n" out.
    assert_eq!(line["bytes_from_client"], 12, "{line}");
    assert_eq!(line["bytes_to_client"], 16, "{line}");
}

#[tokio::test]
async fn sni_picks_terminate_or_passthrough_on_one_port() {
    let term = LineBackend::tcp("term").await;
    let wild = LineBackend::tcp("wild").await;
    let pass = LineBackend::tls("pass", "example").await;
    let port = free_port();
    // The passthrough listener's exact name beats the terminating wildcard one: the most
    // specific listener decides the mode, not the order or the kind.
    let listener = |name, hostname, tls: bool, backend: &str| Listener {
        name,
        hostname: Some(hostname),
        tls: tls.then(|| example_tls(None)),
        routes: vec![route(name, T1, "[]", &to(backend))],
    };
    let yaml = listeners_config(
        port,
        &[
            listener("wild", "*.example.com", true, "wild"),
            listener("term", "tls.example.com", true, "term"),
            listener("pass", "abc.example.com", false, "pass"),
        ],
        &endpoints(&[
            ("term", &[term.addr]),
            ("wild", &[wild.addr]),
            ("pass", &[pass.addr]),
        ]),
    );
    let _p = Proxy::start(&yaml).await;
    for _ in 0..2 {
        assert_eq!(who(port, "tls.example.com").await.unwrap(), "term");
        assert_eq!(who(port, "abc.example.com").await.unwrap(), "pass");
        assert_eq!(who(port, "x.example.com").await.unwrap(), "wild");
    }
    // The TLS backend completed every passthrough handshake; the plain ones got plaintext.
    assert_eq!((term.hits(), wild.hits(), pass.hits()), (2, 2, 2));
    assert_eq!(term.received(), b"ping\nping\n");
    assert_eq!(pass.received(), b"ping\nping\n");
}

#[tokio::test]
async fn a_failed_handshake_never_reaches_the_backend() {
    let t = LineBackend::tcp("t").await;
    let port = free_port();
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let p = Proxy::start_with(&one_terminating(port, example_tls(None), t.addr), limits).await;
    let failed = || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::HandshakeFailed)
    };
    // A client that does not trust the listener's CA aborts the handshake.
    let untrusting = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let err = connect_with(port, "app.example.com", Arc::new(untrusting))
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    eventually("the failed handshake counted", || failed() == 1).await;
    // A ClientHello and then silence: the handshake runs out of the header read timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(&client_hello("app.example.com").1)
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "an unfinished handshake was not closed");
    assert!(!answer.is_empty(), "the server's flight was sent");
    eventually("the unfinished handshake counted", || failed() == 2).await;
    assert_eq!(t.hits(), 0, "the backend was dialled");
    assert_eq!(
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::Relayed),
        0
    );
}

#[tokio::test]
async fn client_certificates_are_validated_as_configured() {
    let t = LineBackend::tcp("t").await;
    let port = free_port();
    let validation = format!(
        "{{caPem: {}, mode: AllowValidOnly}}",
        json_str(&pem("ca.pem"))
    );
    let yaml = one_terminating(port, example_tls(Some(&validation)), t.addr);
    let p = Proxy::start(&yaml).await;
    let with_cert = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pylon_config::pem::root_store(&pem("ca.pem")).unwrap())
        .with_client_auth_cert(
            pylon_config::pem::parse_certs(&pem("client.pem")).unwrap(),
            pylon_config::pem::parse_key(&pem("client.key")).unwrap(),
        )
        .unwrap();
    let mut tls = connect_with(port, "app.example.com", Arc::new(with_cert))
        .await
        .unwrap();
    assert_eq!(ask(&mut tls, "signed").await, "t signed");
    // Without a certificate, TLS 1.3 lets the client finish first; the server's refusal
    // arrives on its first read.
    let refused = match connect(port, "app.example.com").await {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls.write_all(b"unsigned\n").await;
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut answer));
            read.await.expect("closed").is_err() || answer.is_empty()
        }
    };
    assert!(refused, "a client without a certificate was relayed");
    eventually("the refused client counted", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::HandshakeFailed)
            == 1
    })
    .await;
    assert_eq!(t.hits(), 1);
}

#[tokio::test]
async fn an_unknown_name_is_closed_without_an_alert_or_a_backend() {
    let t = LineBackend::tcp("t").await;
    let port = free_port();
    let yaml = listeners_config(
        port,
        &[Listener {
            name: "term",
            hostname: Some("tls.example.com"),
            tls: Some(example_tls(None)),
            routes: vec![route("r", T1, "[]", &to("t"))],
        }],
        &endpoints(&[("t", &[t.addr])]),
    );
    let p = Proxy::start(&yaml).await;
    for sni in ["other.example.com", "tls.example.org"] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&client_hello(sni).1).await.unwrap();
        // No ServerHello and no alert: the connection ends with nothing sent.
        assert!(closed_silently(&mut s).await, "{sni}");
    }
    eventually("two connections without a route", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::NoRoute)
            == 2
    })
    .await;
    assert_eq!(t.hits(), 0);
    assert_eq!(who(port, "tls.example.com").await.unwrap(), "t");
}

#[tokio::test]
async fn a_half_close_through_termination_keeps_the_answer_coming() {
    let t = LineBackend::tcp("t").await;
    let port = free_port();
    let _p = Proxy::start(&one_terminating(port, example_tls(None), t.addr)).await;
    let mut tls = connect(port, "app.example.com").await.unwrap();
    tls.write_all(b"last\n").await.unwrap();
    // close_notify and FIN: the backend answers its eof line only after it saw the end of our
    // data, which the proxy passes on as a FIN.
    tls.shutdown().await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut rest))
        .await
        .expect("the backend's answer and close")
        .unwrap();
    assert_eq!(rest, "t last\nt eof\n");
    // A FIN without close_notify may be a truncation: the relay ends both ways rather than
    // pass it on as the end of the client's data.
    let mut cut = connect(port, "app.example.com").await.unwrap();
    assert_eq!(ask(&mut cut, "first").await, "t first");
    cut.get_mut().0.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), cut.read_to_end(&mut rest)).await;
    assert!(read.expect("the relay ended").is_err(), "{rest:?}");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}
