//! Backends at run time: usable endpoints with round-robin choice, and the pooled upstream
//! clients (HTTP/1.1 keep-alive in [`H1Pool`], h2c multiplexing and TLS through hyper-util's
//! pooled client) shared across config reloads.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};
use crate::fields::MAX_RESPONSE_HEAD;
use crate::h1_pool::{self, H1Pool};
use crate::outlier::Health;
use crate::tcp_pool::{CONNECT_TIMEOUT, IDLE_TIMEOUT, MAX_IDLE};
use crate::worker::worker;
use pylon_config::pem::PemError;
use pylon_config::{self as config, BackendProtocol, EndpointState};

/// Upstream connection pools, reused by every table built from the same [`Clients`].
///
/// Plain HTTP pools exist once per worker thread: a pooled connection's task runs on the
/// runtime that opened it, so sharing one pool between workers would hand every request to
/// another thread (a wake-up and a context switch per request).
pub struct Clients {
    http1: Arc<[Arc<H1Pool>]>,
    /// By connect timeout: hyper's connector has one for all it dials, so backends with
    /// different connect timeouts cannot share a client (most share the default's).
    h2c: Mutex<HashMap<Duration, H2cClients>>,
    /// By TLS settings and connect timeout.
    tls: Mutex<HashMap<(String, Duration), Client<TlsConnector, Body>>>,
    workers: usize,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    /// One set of pools (a single worker).
    pub fn new() -> Self {
        Self::per_worker(1)
    }

    /// Pools for `workers` worker threads (at least one).
    pub fn per_worker(workers: usize) -> Self {
        Clients {
            http1: (0..workers.max(1)).map(|_| Arc::default()).collect(),
            h2c: Mutex::default(),
            tls: Mutex::default(),
            workers: workers.max(1),
        }
    }

    /// The per-worker h2c clients whose connects time out after `connect_timeout`.
    fn h2c_clients(&self, connect_timeout: Duration) -> H2cClients {
        let mut cache = self.h2c.lock().expect("h2c client cache poisoned");
        let clients = cache.entry(connect_timeout).or_insert_with(|| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(connect_timeout));
            (0..self.workers)
                .map(|_| {
                    Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(IDLE_TIMEOUT)
                        .pool_max_idle_per_host(MAX_IDLE)
                        .http2_max_header_list_size(MAX_RESPONSE_HEAD as u32)
                        .http2_only(true)
                        .build(http.clone())
                })
                .collect()
        });
        clients.clone()
    }

    fn tls_client(
        &self,
        tls: &config::BackendTls,
        connect_timeout: Duration,
    ) -> Result<Client<TlsConnector, Body>, PemError> {
        let key = (
            serde_json::to_string(tls).expect("serialisable"),
            connect_timeout,
        );
        let mut cache = self.tls.lock().expect("tls client cache poisoned");
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let connector = TlsConnector {
            config: crate::tls::backend_client_config(tls)?,
            server_name: rustls::pki_types::ServerName::try_from(tls.hostname.clone())
                .map_err(|e| PemError::Key(e.to_string()))?,
            connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .http1_max_buf_size(MAX_RESPONSE_HEAD)
            .http2_max_header_list_size(MAX_RESPONSE_HEAD as u32)
            .build(connector);
        cache.insert(key, client.clone());
        Ok(client)
    }
}

/// One pooled h2c client per worker.
type H2cClients = Arc<[Client<HttpConnector, Body>]>;

#[derive(Clone)]
enum Upstream {
    /// Plain HTTP/1.1, one pool per worker.
    H1(Arc<[Arc<H1Pool>]>),
    /// h2c, one pooled client per worker.
    H2c(H2cClients),
    Tls(Box<Client<TlsConnector, Body>>),
}

/// An upstream exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    H1(#[from] h1_pool::SendError),
    #[error(transparent)]
    Pooled(#[from] hyper_util::client::legacy::Error),
}

impl SendError {
    /// True if no connection could be made (nothing reached the backend).
    pub fn is_connect(&self) -> bool {
        match self {
            SendError::H1(e) => e.is_connect(),
            SendError::Pooled(e) => e.is_connect(),
        }
    }
}

/// One backend as the request path sees it.
pub struct BackendRt {
    pub name: String,
    pub protocol: BackendProtocol,
    /// The endpoints requests go to: the ready ones, or if none is ready the terminating ones
    /// that still serve ([`usable_endpoints`]).
    pub endpoints: Vec<SocketAddr>,
    /// How long a connect to one of `endpoints` may take.
    pub connect_timeout: Duration,
    /// `endpoints` as URI authorities, built once.
    authorities: Vec<Authority>,
    scheme: Scheme,
    next: AtomicUsize,
    upstream: Upstream,
    /// Passive health of `endpoints` (by index): connect failures eject.
    pub health: Health,
}

/// Distinct endpoints a request may try to connect to before it is answered 503: a connect
/// that fails sent nothing, so the next endpoint can take the request.
pub const CONNECT_ATTEMPTS: usize = 3;

/// The endpoints a request has tried to connect to, in order, for [`BackendRt::failover`].
#[derive(Debug)]
pub struct Tried {
    eps: [usize; CONNECT_ATTEMPTS],
    n: usize,
}

impl Tried {
    pub fn first(ep: usize) -> Tried {
        Tried {
            eps: [ep; CONNECT_ATTEMPTS],
            n: 1,
        }
    }
}

impl std::fmt::Debug for BackendRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendRt")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl BackendRt {
    /// The backend `name` of a new config; `previous` is its runtime in the config before, whose
    /// endpoints' health is kept for the addresses that stay.
    pub fn new(
        name: &str,
        b: &config::Backend,
        clients: &Clients,
        previous: Option<&BackendRt>,
    ) -> Result<Self, PemError> {
        let connect_timeout = b.connect_timeout.map_or(CONNECT_TIMEOUT, |d| d.0);
        let upstream = match (&b.tls, b.protocol) {
            (Some(tls), _) => Upstream::Tls(Box::new(clients.tls_client(tls, connect_timeout)?)),
            (None, BackendProtocol::H2c) => Upstream::H2c(clients.h2c_clients(connect_timeout)),
            (None, _) => Upstream::H1(clients.http1.clone()),
        };
        let endpoints = usable_endpoints(&b.endpoints);
        let authorities = endpoints
            .iter()
            .map(|a| {
                Authority::try_from(a.to_string()).expect("a socket address is a valid authority")
            })
            .collect();
        let scheme = match upstream {
            Upstream::Tls(_) => Scheme::HTTPS,
            Upstream::H1(_) | Upstream::H2c(_) => Scheme::HTTP,
        };
        let health = match previous {
            Some(p) => Health::keeping(&endpoints, (&p.endpoints, &p.health)),
            None => Health::new(endpoints.len()),
        };
        Ok(BackendRt {
            name: name.to_string(),
            protocol: b.protocol,
            endpoints,
            connect_timeout,
            authorities,
            scheme,
            next: AtomicUsize::new(0),
            upstream,
            health,
        })
    }

    /// The index of the next endpoint, round-robin; `None` = no usable endpoints (503).
    /// Ejected endpoints are skipped, unless all are (`outlier.rs`).
    pub fn pick(&self) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&ep| self.health.available(ep))
            .or(Some(start % n))
    }

    /// After a failed connect to the last endpoint in `tried`: counts the failure against it
    /// and picks an endpoint not yet tried (one not ejected if there is one), unless
    /// [`CONNECT_ATTEMPTS`] are spent or every endpoint has been tried.
    pub fn failover(&self, tried: &mut Tried) -> Option<usize> {
        let failed = tried.eps[tried.n - 1];
        tracing::debug!(backend = %self.name, addr = %self.endpoints[failed], "connect failed");
        self.health.connect_failed(failed);
        self.next_untried(tried)
    }

    /// An endpoint not yet in `tried` (one not ejected if there is one), added to it; `None`
    /// once [`CONNECT_ATTEMPTS`] are spent or every endpoint has been tried.
    pub fn next_untried(&self, tried: &mut Tried) -> Option<usize> {
        if tried.n == CONNECT_ATTEMPTS {
            return None;
        }
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let untried = || {
            (0..n)
                .map(move |i| (start + i) % n)
                .filter(|ep| !tried.eps[..tried.n].contains(ep))
        };
        let next = untried()
            .find(|&ep| self.health.available(ep))
            .or_else(|| untried().next())?;
        tried.eps[tried.n] = next;
        tried.n += 1;
        Some(next)
    }

    /// The URI to send to endpoint `ep` (from [`pick`](Self::pick)) for `path_and_query`:
    /// origin-form for the HTTP/1.1 pool (it is written as is, and the pool is keyed by
    /// address), absolute for hyper-util's clients (they connect to its authority).
    pub fn uri(&self, ep: usize, path_and_query: &PathAndQuery) -> Uri {
        if let Upstream::H1(_) = self.upstream {
            return Uri::from(path_and_query.clone());
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authorities[ep].clone());
        parts.path_and_query = Some(path_and_query.clone());
        Uri::from_parts(parts).expect("scheme, authority and path are all set")
    }

    /// Plain HTTP/1.1 (no TLS, not h2c): what the native HTTP/1.1 exchange can talk to.
    pub fn is_plain_h1(&self) -> bool {
        matches!(self.upstream, Upstream::H1(_))
    }

    pub fn is_h2(&self) -> bool {
        self.protocol == BackendProtocol::H2c
    }

    /// Sends `req`, whose URI came from [`uri`](Self::uri) for the same `ep`.
    pub async fn send(
        &self,
        ep: usize,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let worker = worker();
        Ok(match &self.upstream {
            Upstream::H1(pools) => {
                pools[worker % pools.len()]
                    .send(self.endpoints[ep], self.connect_timeout, req)
                    .await?
            }
            Upstream::H2c(pools) => pools[worker % pools.len()].request(req).await?,
            Upstream::Tls(c) => c.request(req).await?,
        })
    }
}

/// The addresses of the endpoints a backend sends to, as kube-proxy (ProxyTerminatingEndpoints),
/// Envoy Gateway and Istio choose them: the ready ones; if there are none, the terminating ones
/// that still serve, so a backend of one Pod under a rolling update is not 503 while the old Pod
/// drains (a ready one is preferred the moment there is one); never those that do not serve.
pub fn usable_endpoints(endpoints: &[config::Endpoint]) -> Vec<SocketAddr> {
    let with = |state| {
        endpoints
            .iter()
            .filter(move |e| e.state == state)
            .map(|e| e.address)
    };
    let ready: Vec<SocketAddr> = with(EndpointState::Ready).collect();
    if ready.is_empty() {
        with(EndpointState::Terminating).collect()
    } else {
        ready
    }
}

/// Connects TCP to the URI's address and does TLS with the backend policy's SNI name.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TlsConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or("URI without host")?
                .trim_start_matches('[')
                .trim_end_matches(']');
            let addr: SocketAddr = (
                host.parse::<std::net::IpAddr>()?,
                uri.port_u16().unwrap_or(443),
            )
                .into();
            let tcp = crate::tcp_pool::connect(addr, this.connect_timeout).await?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server_name, tcp)
                .await?;
            Ok(TlsConn(TokioIo::new(tls)))
        })
    }
}

/// A TLS connection to a backend, as hyper's client wants it.
pub struct TlsConn(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
