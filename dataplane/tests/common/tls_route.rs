//! What the TLS listener tests share (`tls_passthrough.rs`, `tls_terminate.rs`): line backends
//! over TLS or plain TCP, rustls clients of the test CA, and configs of TLS listeners.
//! Included with `#[path]` by those tests only, beside `mod common`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

pub use crate::common::endpoints;
use crate::common::pem;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A backend answering, per line it reads, `<id> <line>`; when the client is done sending
/// (close_notify and FIN, or FIN) it answers `<id> eof` and closes. Over TLS or plain TCP.
pub struct LineBackend {
    pub addr: SocketAddr,
    /// Connections (over TLS: handshakes completed).
    hits: Arc<AtomicUsize>,
    /// Every byte read, all connections in arrival order (over TLS: decrypted).
    received: Arc<Mutex<Vec<u8>>>,
}

impl LineBackend {
    /// Over TLS with the test certificate `cert` (`example`: example.com and *.example.com;
    /// `other`: other.org and www.other.org).
    pub async fn tls(id: &str, cert: &str) -> LineBackend {
        let certs = pylon_config::pem::parse_certs(&pem(&format!("{cert}.pem"))).unwrap();
        let key = pylon_config::pem::parse_key(&pem(&format!("{cert}.key"))).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start(id, Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    /// Over plain TCP.
    pub async fn tcp(id: &str) -> LineBackend {
        Self::start(id, None).await
    }

    async fn start(id: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> LineBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = LineBackend {
            addr,
            hits: Arc::default(),
            received: Arc::default(),
        };
        let (id, hits, received) = (
            id.to_string(),
            backend.hits.clone(),
            backend.received.clone(),
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, id, hits, received) =
                    (tls.clone(), id.clone(), hits.clone(), received.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            hits.fetch_add(1, Ordering::SeqCst);
                            answer_lines(tls, &id, &received).await;
                        }
                        None => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            answer_lines(tcp, &id, &received).await;
                        }
                    }
                });
            }
        });
        backend
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

async fn answer_lines<S: AsyncRead + AsyncWrite>(s: S, id: &str, received: &Mutex<Vec<u8>>) {
    let (r, mut w) = tokio::io::split(s);
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    while let Ok(n) = r.read_until(b'\n', &mut line).await
        && n > 0
    {
        received.lock().unwrap().extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let answer = format!("{id} {}\n", text.trim_end_matches('\n'));
        line.clear();
        if w.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = w.write_all(format!("{id} eof\n").as_bytes()).await;
    let _ = w.shutdown().await;
}

/// The test CA's clients.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    let roots = pylon_config::pem::root_store(&pem("ca.pem")).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// A TLS client to the proxy's `port`, sending SNI `sni` and verifying the certificate for it.
pub async fn connect(port: u16, sni: &str) -> Result<TlsStream<TcpStream>, String> {
    connect_with(port, sni, client_config()).await
}

/// [`connect`] with the client config `cfg`.
pub async fn connect_with(
    port: u16,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// Sends `line` and reads the answer line (what arrived before the connection ended, if it
/// ended first).
pub async fn ask(tls: &mut TlsStream<TcpStream>, line: &str) -> String {
    tls.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while tls.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
        answer.push(byte[0]);
    }
    String::from_utf8(answer).unwrap()
}

/// Which backend answers a new connection with SNI `sni` (its id), or the handshake error.
pub async fn who(port: u16, sni: &str) -> Result<String, String> {
    let mut tls = connect(port, sni).await?;
    let answer = ask(&mut tls, "ping").await;
    Ok(answer
        .strip_suffix(" ping")
        .unwrap_or_else(|| panic!("{sni}: {answer:?}"))
        .to_string())
}

/// A client's ClientHello for `sni` as its first flight (one record), and the client, which
/// can go on with the handshake from there.
pub fn client_hello(sni: &str) -> (rustls::ClientConnection, Vec<u8>) {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    (conn, hello)
}

/// A TLSRoute: `hostnames` a YAML list, `refs` its backendRefs (a YAML list).
pub fn route(name: &str, created: &str, hostnames: &str, refs: &str) -> String {
    format!(
        "{{kind: TLSRoute, namespace: d, name: {name}, creationTimestamp: '{created}', hostnames: {hostnames}, rules: [{{backendRefs: {refs}}}]}}"
    )
}

pub fn to(backend: &str) -> String {
    format!("[{{type: Backend, name: {backend}}}]")
}

/// A TLS listener of a config: its `tls` block (flow YAML) makes it terminate.
pub struct Listener<'a> {
    pub name: &'a str,
    pub hostname: Option<&'a str>,
    pub tls: Option<String>,
    pub routes: Vec<String>,
}

/// A config of `listeners`, all on `port`; `backends` by id.
pub fn listeners_config(port: u16, listeners: &[Listener<'_>], backends: &str) -> String {
    let mut yaml = String::from("apiVersion: pylon.dev/dataplane/v1\nlisteners:\n");
    for l in listeners {
        yaml += &format!("- name: {}\n  port: {port}\n  protocol: TLS\n", l.name);
        if let Some(h) = l.hostname {
            yaml += &format!("  hostname: '{h}'\n");
        }
        if let Some(tls) = &l.tls {
            yaml += &format!("  tls: {tls}\n");
        }
        yaml += &format!("  routes: [{}]\n", l.routes.join(", "));
    }
    yaml + &format!("backends: {backends}\n")
}

/// A config of passthrough listeners on `port`: `(name, hostname, routes)`; `backends` by id.
pub fn config(
    port: u16,
    listeners: &[(&str, Option<&str>, Vec<String>)],
    backends: &str,
) -> String {
    let listeners: Vec<Listener<'_>> = listeners
        .iter()
        .map(|(name, hostname, routes)| Listener {
            name,
            hostname: *hostname,
            tls: None,
            routes: routes.clone(),
        })
        .collect();
    listeners_config(port, &listeners, backends)
}

pub const T1: &str = "2024-01-01T00:00:00Z";
pub const T2: &str = "2024-02-01T00:00:00Z";

/// Waits (up to 2 s) until `done` holds.
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// True if the peer closes `s` (EOF or reset) within 3 s without sending anything.
pub async fn closed_silently(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The last access-log line, as JSON, once there is one (a connection is counted before it
/// is logged).
pub async fn last_log_line(shared: &pylon_dataplane::state::Shared) -> serde_json::Value {
    eventually("a logged line", || !shared.log.pending().is_empty()).await;
    let log = String::from_utf8(shared.log.pending()).unwrap();
    serde_json::from_str(log.lines().last().expect("a logged line")).unwrap()
}
