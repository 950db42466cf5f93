//! Test harness: real hyper backends on loopback (HTTP/1.1 + h2c, optionally TLS), the data
//! plane running in-process on loopback ports, and clients for HTTP/1.1, h2c and TLS.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use pylon_dataplane::limits::Limits;
use pylon_dataplane::server::{Http1, ListenerManager};
use pylon_dataplane::state::Shared;
use tokio::net::{TcpListener, TcpStream};

pub const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs");

pub fn pem(name: &str) -> String {
    std::fs::read_to_string(format!("{CERTS}/{name}")).unwrap()
}

/// A backend that echoes the request as JSON. Paths: `/status/N` answers N, `/slow` waits
/// 1.5 s, `/flaky` answers 503 on odd calls, `/ws` accepts a WebSocket-style upgrade and echoes.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct BackendState {
    id: String,
    hits: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn start(id: &str) -> Backend {
        Self::start_inner(id, None).await
    }

    /// A TLS backend serving `backend.pem` (SANs backend.internal, alt.internal); with
    /// `require_client` it demands a client certificate from the test CA.
    pub async fn start_tls(id: &str, require_client: bool) -> Backend {
        let certs = pylon_config::pem::parse_certs(&pem("backend.pem")).unwrap();
        let key = pylon_config::pem::parse_key(&pem("backend.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client {
            let roots = pylon_config::pem::root_store(&pem("ca.pem")).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(v)
        } else {
            builder.with_no_client_auth()
        };
        let cfg = builder.with_single_cert(certs, key).unwrap();
        Self::start_inner(id, Some(Arc::new(cfg))).await
    }

    async fn start_inner(id: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let state = BackendState {
            id: id.to_string(),
            hits: hits.clone(),
            flaky: Arc::new(AtomicUsize::new(0)),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, tls) = (state.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| echo(state.clone(), req));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await
                            {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                });
            }
        });
        Backend { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(
    s: BackendState,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    if path == "/ws" {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap();
        return Ok(resp);
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut status = StatusCode::OK;
    if let Some(code) = path.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
    }
    if path == "/flaky" && s.flaky.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    // Repeated headers are joined with commas, as HTTP allows.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = v.to_str().unwrap_or("");
        headers
            .entry(k.to_string())
            .and_modify(|e| *e = format!("{e},{v}"))
            .or_insert_with(|| v.to_string());
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let version = format!("{:?}", req.version());
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "backend": s.id, "method": method, "path": uri, "host": host, "headers": headers,
        "version": version, "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("x-backend", s.id.parse().unwrap());
    Ok(resp)
}

/// A free loopback port (bound then released).
/// A config's `backends` map (flow YAML): each backend by name with its endpoint addresses.
pub fn endpoints(backends: &[(&str, &[SocketAddr])]) -> String {
    let each: Vec<String> = backends
        .iter()
        .map(|(name, addrs)| {
            let eps: Vec<String> = addrs
                .iter()
                .map(|a| format!("{{address: '{a}'}}"))
                .collect();
            format!("{name}: {{endpoints: [{}]}}", eps.join(", "))
        })
        .collect();
    format!("{{{}}}", each.join(", "))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config with one HTTP listener on `port` serving `routes` (a YAML list, flow or block
/// style) and the backends in `backends` (a YAML map).
pub fn http_listener(port: u16, routes: &str, backends: &str) -> String {
    format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: http
  port: {port}
  protocol: HTTP
  routes: {routes}
backends: {backends}
"
    )
}

/// A config with one HTTP listener on `port` and one route whose single rule sends everything
/// to backend `a` at `backend`; `rule` adds fields to the rule (e.g. `"timeouts: {request: 1s}, "`).
pub fn one_route(port: u16, backend: SocketAddr, rule: &str) -> String {
    http_listener(
        port,
        &format!(
            "[{{kind: HTTPRoute, namespace: d, name: r, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{{rule}backendRefs: [{{type: Backend, name: a}}]}}]}}]"
        ),
        &format!("{{a: {{endpoints: [{{address: '{backend}'}}]}}}}"),
    )
}

/// The data plane, in-process.
pub struct Proxy {
    pub shared: Arc<Shared>,
    pub drain: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(yaml: &str) -> Proxy {
        Self::start_with(yaml, Limits::default()).await
    }

    pub async fn start_with(yaml: &str, limits: Limits) -> Proxy {
        Self::start_engine(yaml, limits, Http1::Native).await
    }

    /// With the given HTTP/1.1 engine.
    pub async fn start_engine(yaml: &str, limits: Limits, http1: Http1) -> Proxy {
        let shared = Shared::new();
        let cfg = pylon_config::parse_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let ports: Vec<(u16, bool)> = cfg
            .listeners
            .iter()
            .map(|l| (l.port, l.protocol == pylon_config::ListenerProtocol::Udp))
            .collect();
        shared.apply("v1", cfg).unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(
            ListenerManager::new(shared.clone(), "127.0.0.1".parse().unwrap(), limits, rx)
                .http1(http1)
                .run(),
        );
        for (p, udp) in ports {
            if udp {
                wait_udp_port(p).await;
            } else {
                wait_port(p).await;
            }
        }
        Proxy { shared, drain: tx }
    }
}

pub async fn wait_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("port {port} never opened");
}

/// Waits until the data plane holds UDP `port` (it cannot be bound any more). The probe's bind
/// is let go before the test yields, so on a current-thread test runtime it cannot make the
/// data plane's bind fail.
pub async fn wait_udp_port(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("UDP port {port} never opened");
}

/// A finished response.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn backend(&self) -> String {
        self.json()["backend"].as_str().unwrap_or("").to_string()
    }
}

pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn http1() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends `method url` with headers `("name", "value")` and returns the full response.
pub async fn send(client: &TestClient, method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    collect(resp).await
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    send(&http1(), "GET", url, headers).await
}

pub async fn collect(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// One request over TLS with the given SNI, trusting the test CA; ALPN h2 when `h2`.
pub async fn tls_get(
    port: u16,
    sni: &str,
    host: &str,
    path: &str,
    h2: bool,
) -> Result<Got, String> {
    tls_get_as(port, sni, host, path, h2, None).await
}

/// [`tls_get`], presenting the client certificate in the test certificate files `client`
/// (`name.pem`, `name.key`) if given.
pub async fn tls_get_as(
    port: u16,
    sni: &str,
    host: &str,
    path: &str,
    h2: bool,
    client: Option<&str>,
) -> Result<Got, String> {
    let roots = pylon_config::pem::root_store(&pem("ca.pem")).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match client {
        None => cfg.with_no_client_auth(),
        Some(name) => cfg
            .with_client_auth_cert(
                pylon_config::pem::parse_certs(&pem(&format!("{name}.pem"))).unwrap(),
                pylon_config::pem::parse_key(&pem(&format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    assert_eq!(alpn_h2, h2, "ALPN negotiation");
    let io = TokioIo::new(tls);
    let req = |uri: String| {
        Request::builder()
            .uri(uri)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let resp = if h2 {
        let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut r = req(format!("https://{host}{path}"));
        r.headers_mut().remove("host");
        s.send_request(r).await.map_err(|e| e.to_string())?
    } else {
        let (mut s, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        s.send_request(req(path.to_string()))
            .await
            .map_err(|e| e.to_string())?
    };
    Ok(collect(resp).await)
}
