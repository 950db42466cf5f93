//! TLS passthrough (protocol TLS listeners, TLSRoutes): real rustls backends terminate TLS
//! behind the data plane, real rustls clients connect with SNI; the handshake completing with
//! the backend's certificate proves the bytes were relayed unchanged.

mod common;
#[path = "common/tls_route.rs"]
mod tls_route;

use std::io::{BufRead, Write as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Proxy, free_port};
use pylon_dataplane::limits::Limits;
use pylon_dataplane::metrics::{L4Outcome as Outcome, L4Protocol};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tls_route::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn the_backend_terminates_tls_and_data_flows_both_ways() {
    let a = LineBackend::tls("a", "example").await;
    let port = free_port();
    let yaml = config(
        port,
        &[(
            "tls",
            None,
            vec![route("r", T1, "[app.example.com]", &to("a"))],
        )],
        &endpoints(&[("a", &[a.addr])]),
    );
    let p = Proxy::start(&yaml).await;
    p.shared.access_log.store(true, Ordering::Relaxed);
    // The proxy has no certificate: the handshake verifying example.pem for the SNI name
    // against the CA is the backend's, through the relay.
    let mut tls = connect(port, "App.Example.com").await.unwrap();
    assert_eq!(ask(&mut tls, "one").await, "a one");
    assert_eq!(ask(&mut tls, "two").await, "a two");
    drop(tls);
    let m = &p.shared.metrics;
    eventually("a relayed connection counted", || {
        m.l4_connections(L4Protocol::Tls, Outcome::Relayed) == 1
    })
    .await;
    let text = m.render(true);
    let bytes = |dir: &str| -> u64 {
        let prefix = format!("pylon_l4_bytes_total{{protocol=\"tls\",direction=\"{dir}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
        line[prefix.len()..].parse().unwrap()
    };
    assert!(
        bytes("client_to_backend") > 100 && bytes("backend_to_client") > 500,
        "{text}"
    );
    let line = last_log_line(&p.shared).await;
    assert_eq!(line["sni"], "app.example.com", "{line}");
    assert_eq!(line["mode"], "passthrough");
    assert_eq!(line["route"], "d/r");
    assert_eq!(line["backend"], a.addr.to_string());
    assert_eq!(line["outcome"], "relayed");
    assert!(line["bytes_to_client"].as_u64().unwrap() > 500, "{line}");
    assert!(line["duration_ms"].as_f64().is_some());
}

#[tokio::test]
async fn sni_picks_the_route_exact_before_wildcard_and_unknown_names_are_closed() {
    let www = LineBackend::tls("www", "example").await;
    let wild = LineBackend::tls("wild", "example").await;
    let other = LineBackend::tls("other", "other").await;
    let port = free_port();
    // The wildcard route is older: the exact one must win by hostname, not by age.
    let yaml = config(
        port,
        &[(
            "tls",
            None,
            vec![
                route("wild", T1, "['*.example.com']", &to("wild")),
                route("www", T2, "[www.example.com]", &to("www")),
                route("other", T2, "[www.other.org]", &to("other")),
            ],
        )],
        &endpoints(&[
            ("www", &[www.addr]),
            ("wild", &[wild.addr]),
            ("other", &[other.addr]),
        ]),
    );
    let p = Proxy::start(&yaml).await;
    assert_eq!(who(port, "www.example.com").await.unwrap(), "www");
    assert_eq!(who(port, "api.example.com").await.unwrap(), "wild");
    assert_eq!(who(port, "www.other.org").await.unwrap(), "other");
    assert!(who(port, "unknown.net").await.is_err());
    assert!(
        who(port, "example.com").await.is_err(),
        "a wildcard takes no apex"
    );
    eventually("two connections without a route", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::NoRoute)
            == 2
    })
    .await;
}

#[tokio::test]
async fn the_most_specific_listener_of_the_port_takes_the_name() {
    let www = LineBackend::tls("www", "example").await;
    let wild = LineBackend::tls("wild", "example").await;
    let port = free_port();
    // Listener isolation: the wildcard listener's route (any name) does not take
    // www.example.com, which the exact listener accepts.
    let yaml = config(
        port,
        &[
            (
                "wild",
                Some("*.example.com"),
                vec![route("wild", T1, "[]", &to("wild"))],
            ),
            (
                "www",
                Some("www.example.com"),
                vec![route("www", T2, "[]", &to("www"))],
            ),
        ],
        &endpoints(&[("www", &[www.addr]), ("wild", &[wild.addr])]),
    );
    let _p = Proxy::start(&yaml).await;
    assert_eq!(who(port, "www.example.com").await.unwrap(), "www");
    assert_eq!(who(port, "api.example.com").await.unwrap(), "wild");
    assert!(who(port, "www.other.org").await.is_err());
}

/// Accepts any server certificate: without SNI there is no name to verify it for.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which backend answers a connection whose ClientHello has no SNI (an IP address as the
/// server name: rustls sends none).
async fn who_without_sni(port: u16) -> Result<String, String> {
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let answer = ask(&mut tls, "ping").await;
    Ok(answer.trim_end_matches(" ping").to_string())
}

#[tokio::test]
async fn without_sni_only_routes_and_listeners_without_hostnames_take_it() {
    let (old, new, named) = (
        LineBackend::tls("old", "example").await,
        LineBackend::tls("new", "example").await,
        LineBackend::tls("named", "example").await,
    );
    let port = free_port();
    // Two routes for any name: the older wins (then namespace/name).
    let yaml = config(
        port,
        &[(
            "tls",
            None,
            vec![
                route("a-new", T2, "[]", &to("new")),
                route("b-old", T1, "[]", &to("old")),
                route("named", T1, "[app.example.com]", &to("named")),
            ],
        )],
        &endpoints(&[
            ("old", &[old.addr]),
            ("new", &[new.addr]),
            ("named", &[named.addr]),
        ]),
    );
    let p = Proxy::start(&yaml).await;
    assert_eq!(who_without_sni(port).await.unwrap(), "old");
    assert_eq!(who(port, "app.example.com").await.unwrap(), "named");
    assert_eq!(who(port, "www.example.com").await.unwrap(), "old");
    // Only routes with hostnames, or a listener with one: no route without SNI.
    let only_named = config(
        port,
        &[(
            "tls",
            None,
            vec![route("named", T1, "[app.example.com]", &to("named"))],
        )],
        &endpoints(&[("named", &[named.addr])]),
    );
    p.shared
        .apply("v2", pylon_config::parse_str(&only_named).unwrap())
        .unwrap();
    assert!(who_without_sni(port).await.is_err());
    let listener_named = config(
        port,
        &[(
            "tls",
            Some("*.example.com"),
            vec![route("any", T1, "[]", &to("named"))],
        )],
        &endpoints(&[("named", &[named.addr])]),
    );
    p.shared
        .apply("v3", pylon_config::parse_str(&listener_named).unwrap())
        .unwrap();
    assert!(who_without_sni(port).await.is_err());
    assert_eq!(who(port, "x.example.com").await.unwrap(), "named");
}

/// How a hand-driven client writes its ClientHello.
#[derive(Debug, Clone, Copy)]
enum Written {
    /// One byte per TCP write, a millisecond apart: many reads on the proxy's side.
    ByteByByte,
    /// Re-framed as two TLS records (split 40 bytes into the body), sent 20 ms apart.
    TwoRecords,
}

/// A blocking rustls client that writes its ClientHello as `how` says, then completes the
/// handshake (verifying the certificate for `sni`) and asks `ping`; returns the answer.
fn ask_with_hello_written(port: u16, sni: &str, how: Written) -> std::io::Result<String> {
    let (mut conn, hello) = client_hello(sni);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port))?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    assert_eq!(hello[0], 0x16, "one handshake record");
    assert_eq!(
        u16::from_be_bytes([hello[3], hello[4]]) as usize,
        hello.len() - 5,
        "one record"
    );
    match how {
        Written::ByteByByte => {
            for b in &hello {
                sock.write_all(std::slice::from_ref(b))?;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Written::TwoRecords => {
            let body = &hello[5..];
            for (i, part) in [&body[..40], &body[40..]].into_iter().enumerate() {
                let mut record = hello[..3].to_vec();
                record.extend_from_slice(&(part.len() as u16).to_be_bytes());
                record.extend_from_slice(part);
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                sock.write_all(&record)?;
            }
        }
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"ping\n")?;
    let mut line = String::new();
    std::io::BufReader::new(tls).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

#[tokio::test]
async fn a_client_hello_fragmented_over_reads_or_records_still_routes() {
    let a = LineBackend::tls("a", "example").await;
    let b = LineBackend::tls("b", "other").await;
    let port = free_port();
    let yaml = config(
        port,
        &[(
            "tls",
            None,
            vec![
                route("a", T1, "['*.example.com']", &to("a")),
                route("b", T1, "[www.other.org]", &to("b")),
            ],
        )],
        &endpoints(&[("a", &[a.addr]), ("b", &[b.addr])]),
    );
    let _p = Proxy::start(&yaml).await;
    for (sni, how, want) in [
        ("app.example.com", Written::ByteByByte, "a ping"),
        ("www.other.org", Written::ByteByByte, "b ping"),
        ("app.example.com", Written::TwoRecords, "a ping"),
        ("www.other.org", Written::TwoRecords, "b ping"),
    ] {
        let got = tokio::task::spawn_blocking(move || ask_with_hello_written(port, sni, how))
            .await
            .unwrap();
        assert_eq!(got.unwrap(), want, "{sni} {how:?}");
    }
}

#[tokio::test]
async fn a_half_close_keeps_the_other_direction_open() {
    let a = LineBackend::tls("a", "example").await;
    let port = free_port();
    let yaml = config(
        port,
        &[("tls", None, vec![route("r", T1, "[]", &to("a"))])],
        &endpoints(&[("a", &[a.addr])]),
    );
    let _p = Proxy::start(&yaml).await;
    let mut tls = connect(port, "app.example.com").await.unwrap();
    tls.write_all(b"last\n").await.unwrap();
    // close_notify and FIN: the backend answers only after it saw the end of our data.
    tls.shutdown().await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut rest))
        .await
        .expect("the backend's answer and close")
        .unwrap();
    assert_eq!(rest, "a last\na eof\n");
}

#[tokio::test]
async fn backend_refs_are_weighted_and_invalid_ones_close() {
    let (a, b) = (
        LineBackend::tls("a", "example").await,
        LineBackend::tls("b", "example").await,
    );
    let port = free_port();
    let refs = "[{type: Backend, name: a, weight: 1}, {type: Backend, name: b, weight: 0}]";
    let invalid = "[{type: Invalid, weight: 1, reason: BackendNotFound}]";
    let yaml = config(
        port,
        &[(
            "tls",
            None,
            vec![
                route("r", T1, "[app.example.com]", refs),
                route("bad", T1, "[bad.example.com]", invalid),
            ],
        )],
        &endpoints(&[("a", &[a.addr]), ("b", &[b.addr])]),
    );
    let p = Proxy::start(&yaml).await;
    for _ in 0..6 {
        assert_eq!(who(port, "app.example.com").await.unwrap(), "a");
    }
    assert_eq!((a.hits(), b.hits()), (6, 0));
    assert!(who(port, "bad.example.com").await.is_err());
    eventually("an invalid backendRef counted", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::InvalidBackend)
            == 1
    })
    .await;
}

#[tokio::test]
async fn a_dead_endpoint_fails_over_to_a_live_one() {
    let live = LineBackend::tls("live", "example").await;
    // Bound and released: connects are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let port = free_port();
    let yaml = config(
        port,
        &[("tls", None, vec![route("r", T1, "[]", &to("a"))])],
        &endpoints(&[("a", &[dead, live.addr])]),
    );
    let p = Proxy::start(&yaml).await;
    for i in 0..6 {
        assert_eq!(who(port, "app.example.com").await, Ok("live".into()), "{i}");
    }
    // A backend with only the dead endpoint: closed, counted.
    let only_dead = config(
        port,
        &[("tls", None, vec![route("r", T1, "[]", &to("a"))])],
        &endpoints(&[("a", &[dead])]),
    );
    p.shared
        .apply("v2", pylon_config::parse_str(&only_dead).unwrap())
        .unwrap();
    assert!(who(port, "app.example.com").await.is_err());
    eventually("an unavailable backend counted", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::BackendUnavailable)
            == 1
    })
    .await;
}

#[tokio::test]
async fn a_config_swap_keeps_established_connections_relaying() {
    let (a, b) = (
        LineBackend::tls("a", "example").await,
        LineBackend::tls("b", "example").await,
    );
    let port = free_port();
    let to_backend = |name: &str| {
        config(
            port,
            &[("tls", None, vec![route("r", T1, "[]", &to(name))])],
            &endpoints(&[("a", &[a.addr]), ("b", &[b.addr])]),
        )
    };
    let p = Proxy::start(&to_backend("a")).await;
    let mut tls = connect(port, "app.example.com").await.unwrap();
    assert_eq!(ask(&mut tls, "before").await, "a before");
    p.shared
        .apply("v2", pylon_config::parse_str(&to_backend("b")).unwrap())
        .unwrap();
    assert_eq!(who(port, "app.example.com").await.unwrap(), "b");
    assert_eq!(ask(&mut tls, "after").await, "a after");
    // Even a config without the route leaves it relaying.
    let none = config(port, &[("tls", None, vec![])], "{}");
    p.shared
        .apply("v3", pylon_config::parse_str(&none).unwrap())
        .unwrap();
    assert!(who(port, "app.example.com").await.is_err());
    assert_eq!(ask(&mut tls, "still").await, "a still");
}

#[tokio::test]
async fn what_is_no_client_hello_in_time_is_closed_and_idle_relays_end() {
    let a = LineBackend::tls("a", "example").await;
    let port = free_port();
    let yaml = config(
        port,
        &[("tls", None, vec![route("r", T1, "[]", &to("a"))])],
        &endpoints(&[("a", &[a.addr])]),
    );
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let p = Proxy::start_with(&yaml, limits).await;
    let bad = || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tls, Outcome::BadClientHello)
    };
    // `Proxy::start`'s probe of the port connected and closed without a byte.
    eventually("the start-up probe counted", || bad() == 1).await;
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_silently(&mut plain).await, "plain HTTP");
    // Half a record header, then nothing: closed after the header read timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(&[0x16, 0x03]).await.unwrap();
    assert!(closed_silently(&mut slow).await, "a slow ClientHello");
    eventually("two more bad ClientHellos counted", || bad() == 3).await;
    assert_eq!(a.hits(), 0);
    // A relay with nothing to say either way for the idle timeout is closed.
    let mut tls = connect(port, "app.example.com").await.unwrap();
    assert_eq!(ask(&mut tls, "hi").await, "a hi");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the idle relay was not closed");
}
