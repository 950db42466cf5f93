//! The controller client (config protocol v1, `api-docs/config-protocol.md`): streams updates
//! for one Gateway, applies them, acknowledges each, and reconnects with exponential backoff
//! (100 ms → 5 s) while the last good config keeps serving.
//!
//! The controller is reached over HTTPS, its certificate verified against the config CA only
//! ([`Transport::Tls`]; HTTP/2 when ALPN offers it), or — explicitly, for tests and local
//! development — over plain HTTP ([`Transport::Plaintext`]). The ServiceAccount token is sent
//! on every request, so plain HTTP exposes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;

use crate::state::{ApplyError, Shared};
use pylon_config::protocol::{self, Ack, Update};

/// No line (not even a ping) for this long = the stream is dead.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest accepted line (a full snapshot).
const MAX_LINE: usize = 64 << 20;
/// An ack attempt that takes longer than this is abandoned and retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between attempts at an ack. Status (Programmed, Accepted) waits on acks, so
/// a failed one is retried until it is delivered or a newer one replaces it.
const ACK_BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "bad controller URL {0:?}: expected https://HOST:PORT (http://HOST:PORT in plaintext mode)"
    )]
    Url(String),
    #[error("--gateway {0:?} is not NAMESPACE/NAME")]
    Gateway(String),
    #[error(
        "controller URL {0:?} is plain HTTP but a config CA is given: use https://, or drop the CA and opt into plaintext explicitly"
    )]
    HttpWithCa(String),
    #[error(
        "controller URL {0:?} is https:// but no config CA is given: pass the controller's CA bundle (--config-ca FILE)"
    )]
    HttpsWithoutCa(String),
    #[error(
        "controller URL {0:?} is plain HTTP: the config and the ServiceAccount token would travel unencrypted; use https:// with --config-ca, or opt in with --controller-plaintext (tests, local development)"
    )]
    PlaintextNotAllowed(String),
    #[error(
        "controller URL {0:?} is https:// but plaintext mode was requested: drop --controller-plaintext"
    )]
    HttpsInPlaintextMode(String),
    #[error("config CA: {0}")]
    Ca(#[from] pylon_config::pem::PemError),
    #[error("reading the config CA {path}: {error}")]
    CaFile { path: String, error: std::io::Error },
    #[error("request: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("stream: {0}")]
    Stream(#[from] hyper::Error),
    #[error("controller answered {0}")]
    Status(StatusCode),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("stream ended")]
    Ended,
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the stream's deltas are not from the running version ({0}): reconnecting to resync")]
    Resync(String),
}

/// How the controller is reached.
#[derive(Clone, Debug)]
pub enum Transport {
    /// HTTPS; the controller's certificate must chain to these PEM certificates (the config CA).
    Tls {
        /// The CA bundle, PEM.
        ca_pem: String,
    },
    /// Plain HTTP (tests, local development): only with an explicit opt-in.
    Plaintext,
}

impl Transport {
    /// The transport the command line asks for: `ca_file` (`--config-ca`) selects TLS;
    /// without it `plaintext` (`--controller-plaintext`) must be given, so plain HTTP is never
    /// chosen by accident. The URL's scheme is checked against the result by
    /// [`ControllerClient::new`].
    pub fn from_flags(
        url: &str,
        ca_file: Option<&std::path::Path>,
        plaintext: bool,
    ) -> Result<Self, ClientError> {
        match (ca_file, plaintext) {
            (Some(path), _) => {
                let ca_pem =
                    std::fs::read_to_string(path).map_err(|error| ClientError::CaFile {
                        path: path.display().to_string(),
                        error,
                    })?;
                Ok(Transport::Tls { ca_pem })
            }
            (None, true) => Ok(Transport::Plaintext),
            (None, false) if url.starts_with("https://") => {
                Err(ClientError::HttpsWithoutCa(url.to_string()))
            }
            (None, false) if url.starts_with("http://") => {
                Err(ClientError::PlaintextNotAllowed(url.to_string()))
            }
            (None, false) => Err(ClientError::Url(url.to_string())),
        }
    }
}

/// The HTTP client for the chosen transport.
enum Http {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Http {
    fn new(transport: &Transport) -> Result<Self, ClientError> {
        Ok(match transport {
            Transport::Plaintext => Http::Plain(Client::builder(TokioExecutor::new()).build_http()),
            Transport::Tls { ca_pem } => {
                let tls = crate::tls::ca_client_config(ca_pem)?;
                // https only: a redirect or a typo can never downgrade to plain HTTP. ALPN
                // offers h2 and http/1.1; the stream and the acks share one h2 connection.
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .build();
                Http::Tls(Client::builder(TokioExecutor::new()).build(connector))
            }
        })
    }

    fn request(&self, req: Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            Http::Plain(c) => c.request(req),
            Http::Tls(c) => c.request(req),
        }
    }
}

/// Checks the controller URL against the transport; `Ok` is the base URL without a trailing `/`.
pub fn check_url(base: &str, transport: &Transport) -> Result<String, ClientError> {
    let base = base.trim_end_matches('/').to_string();
    let uri: Uri = base.parse().map_err(|_| ClientError::Url(base.clone()))?;
    if uri.host().is_none() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(ClientError::Url(base));
    }
    match (uri.scheme_str(), transport) {
        (Some("https"), Transport::Tls { .. }) | (Some("http"), Transport::Plaintext) => Ok(base),
        (Some("http"), Transport::Tls { .. }) => Err(ClientError::HttpWithCa(base)),
        (Some("https"), Transport::Plaintext) => Err(ClientError::HttpsInPlaintextMode(base)),
        _ => Err(ClientError::Url(base)),
    }
}

pub struct ControllerClient {
    base: String,
    namespace: String,
    name: String,
    pod: String,
    token_file: Option<PathBuf>,
    shared: Arc<Shared>,
    http: Http,
    /// The newest ack to send ([`ControllerClient::send_acks`]).
    acks: watch::Sender<Option<Ack>>,
}

impl ControllerClient {
    /// `base` is `https://HOST:PORT` (`http://` with [`Transport::Plaintext`]); `gateway` is
    /// `NAMESPACE/NAME`.
    pub fn new(
        base: &str,
        transport: &Transport,
        gateway: &str,
        pod: &str,
        token_file: Option<PathBuf>,
        shared: Arc<Shared>,
    ) -> Result<Self, ClientError> {
        let base = check_url(base, transport)?;
        let (namespace, name) = gateway
            .split_once('/')
            .filter(|(n, g)| !n.is_empty() && !g.is_empty() && !g.contains('/'))
            .ok_or_else(|| ClientError::Gateway(gateway.to_string()))?;
        Ok(ControllerClient {
            base,
            namespace: namespace.to_string(),
            name: name.to_string(),
            pod: pod.to_string(),
            token_file,
            shared,
            http: Http::new(transport)?,
            acks: watch::channel(None).0,
        })
    }

    /// Runs forever: stream, apply, ack, reconnect. Acks are sent by a task of their own, the
    /// newest only: the stream is never held up by an ack (deltas are small, so a controller
    /// can have many queued; each waiting for the previous one's ack would add up).
    pub async fn run(self) {
        let this = Arc::new(self);
        tokio::spawn(this.clone().send_acks(this.acks.subscribe()));
        this.stream_forever().await
    }

    async fn stream_forever(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut progressed = false;
            let err = self.stream_once(&mut progressed).await;
            if progressed {
                backoff = Duration::from_millis(100);
            }
            tracing::warn!(error = %err, retry_in = ?backoff, "config stream lost; serving the last good config");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn token(&self) -> Option<String> {
        let path = self.token_file.as_ref()?;
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn request(&self, method: http::Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = self.token() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(body)).expect("valid request")
    }

    async fn stream_once(&self, progressed: &mut bool) -> ClientError {
        match self.stream_inner(progressed).await {
            Ok(()) => ClientError::Ended,
            Err(e) => e,
        }
    }

    async fn stream_inner(&self, progressed: &mut bool) -> Result<(), ClientError> {
        // Naming the running version lets the controller resume with a delta (or nothing)
        // instead of a whole snapshot.
        let running = self.shared.table().map(|t| t.version.clone());
        let path = format!(
            "{}?pod={}{}",
            protocol::config_path(&self.namespace, &self.name),
            self.pod,
            running.map_or(String::new(), |v| format!("&version={v}"))
        );
        let resp = self
            .http
            .request(self.request(http::Method::GET, &path, Bytes::new()))
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(ClientError::Status(resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err(ClientError::Idle(STREAM_IDLE_TIMEOUT)),
                Ok(None) => return Ok(()),
                Ok(Some(f)) => f?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(nl + 1);
                let line = &line[..nl];
                if !line.iter().all(u8::is_ascii_whitespace) {
                    *progressed = true;
                    self.handle_line(line)?;
                }
            }
            if buf.len() > MAX_LINE {
                return Err(ClientError::LineTooLong);
            }
        }
    }

    /// Applies one line and hands its ack to [`ControllerClient::send_acks`]; `Err` ends the
    /// stream (its deltas can no longer apply).
    fn handle_line(&self, line: &[u8]) -> Result<(), ClientError> {
        let update: Update = match serde_json::from_slice(line) {
            Ok(u) => u,
            Err(e) => {
                // No version to acknowledge: say so in the log and in /ready.
                let msg = format!("undecodable update: {e}");
                tracing::warn!("{msg}");
                self.shared
                    .metrics
                    .config_rejections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *self.shared.last_error.lock().expect("poisoned") = Some(msg);
                return Ok(());
            }
        };
        let (version, result) = match update {
            Update::Ping => return Ok(()),
            Update::Snapshot { version, config } => {
                let r = self.shared.apply(&version, *config);
                (version, r)
            }
            Update::Delta {
                version,
                base,
                delta,
            } => match self.shared.apply_delta(&version, &base, &delta) {
                // Not a verdict on the config (nothing to ack): this stream builds on a version
                // this data plane does not run (it rejected one); a new stream resumes from
                // the one it runs.
                Err(ApplyError::Base { running, .. }) => return Err(ClientError::Resync(running)),
                r => (version, r),
            },
        };
        let ack = Ack {
            pod: self.pod.clone(),
            version,
            accepted: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        };
        self.acks.send_replace(Some(ack));
        Ok(())
    }

    /// Sends the newest ack, retrying with backoff until it is delivered, refused, or
    /// replaced by a newer one (intermediate versions need no ack: status follows the newest).
    async fn send_acks(self: Arc<Self>, mut rx: watch::Receiver<Option<Ack>>) {
        while rx.changed().await.is_ok() {
            let Some(ack) = rx.borrow_and_update().clone() else {
                continue;
            };
            let mut backoff = Duration::from_millis(200);
            for attempt in 1.. {
                let Err(error) = self.send_ack(&ack).await else {
                    break;
                };
                tracing::warn!(attempt, %error, version = %ack.version, retry_in = ?backoff, "ack failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // A newer ack: send that one instead (the outer loop reads it).
                        rx.mark_changed();
                        break;
                    }
                }
                backoff = (backoff * 2).min(ACK_BACKOFF_MAX);
            }
        }
    }

    /// One attempt at an ack; `Ok` also when the controller refused it (resending the same ack
    /// would not help).
    async fn send_ack(&self, ack: &Ack) -> Result<(), String> {
        let body = Bytes::from(serde_json::to_vec(ack).expect("serialisable"));
        let path = protocol::ack_path(&self.namespace, &self.name);
        let req = self.request(http::Method::POST, &path, body);
        match tokio::time::timeout(ACK_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) if r.status().is_client_error() => {
                tracing::warn!(status = %r.status(), version = %ack.version, "ack refused");
                Ok(())
            }
            Ok(Ok(r)) => Err(format!("status {}", r.status())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {ACK_TIMEOUT:?}")),
        }
    }
}
