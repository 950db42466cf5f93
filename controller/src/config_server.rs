//! The config server (protocol v1, wire types in `pylon_dataplane::config::protocol`): each data
//! plane streams its Gateway's config as NDJSON — a snapshot first, then snapshots on change,
//! endpoint-only updates when just endpoints changed, pings every ~15 s — and acks each update.
//!
//! One tokio `watch` channel per Gateway holds the latest state; a slow stream only ever sees
//! the newest version (intermediate ones are skipped, never queued).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pylon_dataplane::config::{self as dp, protocol};
use tokio::sync::watch;

use crate::auth::{AuthError, Authenticator};
use crate::model::ObjectKey;

/// The latest config of one Gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayState {
    /// Version of the last change (snapshot or endpoints).
    pub version: u64,
    /// Version of the last full snapshot.
    pub snapshot_version: u64,
    /// The full config (endpoints included); `None` until the Gateway is translated.
    pub config: Option<Arc<dp::Config>>,
    /// Since which version each listener and route has its current form (honest status).
    pub since: Arc<crate::honest::Since>,
}

/// The last ack of one data-plane pod.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PodAck {
    /// Version acked.
    pub version: u64,
    /// Whether it was applied.
    pub accepted: bool,
    /// Why not.
    pub error: Option<String>,
}

/// All Gateways' channels and the data planes' acks.
#[derive(Default)]
pub struct ConfigHub {
    channels: Mutex<HashMap<ObjectKey, watch::Sender<GatewayState>>>,
    acks: Mutex<BTreeMap<ObjectKey, BTreeMap<String, PodAck>>>,
    next_version: std::sync::atomic::AtomicU64,
    /// Notified on every ack, so status can follow what data planes really run.
    pub ack_notify: tokio::sync::Notify,
}

/// Configs without endpoints, to tell a route change from an endpoint change.
fn without_endpoints(c: &dp::Config) -> dp::Config {
    let mut c = c.clone();
    for b in c.backends.values_mut() {
        b.endpoints.clear();
    }
    c
}

impl ConfigHub {
    fn sender(&self, key: &ObjectKey) -> watch::Sender<GatewayState> {
        let mut ch = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        ch.entry(key.clone())
            .or_insert_with(|| watch::channel(GatewayState::default()).0)
            .clone()
    }

    fn bump(&self) -> u64 {
        self.next_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Publishes a Gateway's config; returns the version it is served as. Unchanged configs
    /// keep their version; endpoint-only changes keep the snapshot version.
    pub fn publish(&self, key: &ObjectKey, config: dp::Config) -> u64 {
        let tx = self.sender(key);
        let mut out = 0;
        tx.send_if_modified(|st| {
            if let Some(old) = &st.config {
                if **old == config {
                    out = st.version;
                    return false;
                }
                let endpoints_only = without_endpoints(old) == without_endpoints(&config);
                st.version = self.bump();
                if !endpoints_only {
                    st.snapshot_version = st.version;
                    st.since = Arc::new(st.since.advance(&config, st.version));
                }
            } else {
                st.version = self.bump();
                st.snapshot_version = st.version;
                st.since = Arc::new(st.since.advance(&config, st.version));
            }
            st.config = Some(Arc::new(config.clone()));
            out = st.version;
            true
        });
        out
    }

    /// Forgets Gateways that no longer exist; their streams end.
    pub fn retain(&self, keep: impl Fn(&ObjectKey) -> bool) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    /// The current state of a Gateway.
    pub fn state(&self, key: &ObjectKey) -> GatewayState {
        self.sender(key).borrow().clone()
    }

    /// Acks per pod of a Gateway.
    pub fn acks(&self, key: &ObjectKey) -> BTreeMap<String, PodAck> {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    fn record_ack(&self, key: ObjectKey, pod: String, ack: PodAck) {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .insert(pod, ack);
        self.ack_notify.notify_waiters();
    }
}

/// Shared state of the config server's handlers.
#[derive(Clone)]
struct ServerState {
    hub: Arc<ConfigHub>,
    ping_every: Duration,
    auth: Arc<Authenticator>,
}

/// The config server's routes.
pub fn router(hub: Arc<ConfigHub>, ping_every: Duration, auth: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/gateways/{namespace}/{name}/config", get(stream))
        .route("/v1/gateways/{namespace}/{name}/ack", post(ack))
        .with_state(ServerState {
            hub,
            ping_every,
            auth: Arc::new(auth),
        })
}

/// Authenticates a request for a Gateway; `Err` is the response to send.
async fn authenticate(
    st: &ServerState,
    headers: &HeaderMap,
    key: &ObjectKey,
) -> Result<(), Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    st.auth.check(header, key).await.map_err(|e| {
        tracing::warn!(gateway = %key, error = %e, "refused data plane");
        let code = match e {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        (code, format!("{e}\n")).into_response()
    })
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    pod: Option<String>,
}

/// One line of the stream, newline-terminated.
fn line(u: &protocol::Update) -> Bytes {
    let mut v = serde_json::to_vec(u).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// What a stream has sent so far.
struct StreamState {
    rx: watch::Receiver<GatewayState>,
    sent_snapshot: u64,
    sent_version: u64,
    ping: tokio::time::Interval,
    _open: OpenStream,
}

/// Counts open streams for /metrics; decrements when the stream is dropped.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        crate::metrics::CONFIG_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        crate::metrics::CONFIG_STREAMS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The next line to send given the current state, if any.
fn next_update(st: &mut StreamState) -> Option<protocol::Update> {
    let cur = st.rx.borrow_and_update().clone();
    let config = cur.config?;
    if cur.version == st.sent_version {
        return None;
    }
    let update = if cur.snapshot_version != st.sent_snapshot {
        protocol::Update::Snapshot {
            version: cur.version.to_string(),
            config: Box::new((*config).clone()),
        }
    } else {
        protocol::Update::Endpoints {
            version: cur.version.to_string(),
            backends: config
                .backends
                .iter()
                .map(|(k, b)| (k.clone(), b.endpoints.clone()))
                .collect(),
        }
    };
    st.sent_snapshot = cur.snapshot_version;
    st.sent_version = cur.version;
    Some(update)
}

async fn stream(
    State(server): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let key = ObjectKey::new(namespace, name);
    if let Err(r) = authenticate(&server, &headers, &key).await {
        return r;
    }
    let (hub, ping_every) = (server.hub.clone(), server.ping_every);
    tracing::info!(gateway = %key, pod = q.pod.as_deref().unwrap_or("?"), "data plane connected");
    let mut ping = tokio::time::interval(ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut rx = hub.sender(&key).subscribe();
    rx.mark_changed();
    let state = StreamState {
        rx,
        sent_snapshot: 0,
        sent_version: 0,
        ping,
        _open: OpenStream::new(),
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.rx.has_changed().unwrap_or(false) {
                if let Some(u) = next_update(&mut st) {
                    return Some((Ok::<_, Infallible>(line(&u)), st));
                }
                continue;
            }
            tokio::select! {
                changed = st.rx.changed() => {
                    // The Gateway was deleted: end the stream; the data plane keeps its
                    // last config and reconnects.
                    changed.ok()?;
                    st.rx.mark_changed();
                }
                _ = st.ping.tick() => return Some((Ok(line(&protocol::Update::Ping)), st)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, protocol::STREAM_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

async fn ack(
    State(server): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(a): Json<protocol::Ack>,
) -> Response {
    let key = ObjectKey::new(namespace, name);
    if let Err(r) = authenticate(&server, &headers, &key).await {
        return r;
    }
    let hub = &server.hub;
    let Ok(version) = a.version.parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("version {:?} is not one this controller sent", a.version),
        )
            .into_response();
    };
    crate::metrics::ACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !a.accepted {
        crate::metrics::REJECTED_ACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(gateway = %key, pod = %a.pod, version, error = a.error.as_deref().unwrap_or(""), "data plane rejected config");
    }
    hub.record_ack(
        key,
        a.pod,
        PodAck {
            version,
            accepted: a.accepted,
            error: a.error,
        },
    );
    StatusCode::NO_CONTENT.into_response()
}
