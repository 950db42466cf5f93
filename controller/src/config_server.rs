//! The config server (protocol v1, wire types in `pylon_config::protocol`): each data
//! plane streams its Gateway's config as NDJSON — a snapshot first, then a delta per change
//! (`pylon_config::delta`), pings every ~15 s — and acks each update. A data plane that
//! reconnects naming the version it runs resumes with a delta from it (or nothing, if it is
//! current) while this replica still holds that version ([`RECENT`] per Gateway).
//!
//! One tokio `watch` channel per Gateway holds the latest state; a slow stream only ever sees
//! the newest version (intermediate ones are skipped, never queued): each stream diffs what it
//! last sent against the newest.
//!
//! Versions are derived from content ([`crate::version`]), so every replica serves the same
//! config as the same version. An ack is recorded here and, when a [`PodReporter`] is given,
//! written onto the acking data-plane Pod, where the leader (whichever replica it is) reads it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pylon_config::{self as dp, protocol};
use tokio::sync::watch;

use crate::auth::{AuthError, Authenticator};
use crate::config_hub::{ConfigHub, GatewayState, PodAck};
use crate::dataplane_pods::PodReporter;
use crate::model::ObjectKey;

/// Shared state of the config server's handlers.
#[derive(Clone)]
struct ServerState {
    hub: Arc<ConfigHub>,
    ping_every: Duration,
    auth: Arc<Authenticator>,
    pods: Option<PodReporter>,
}

/// The config server's routes; acks are only recorded in `hub`.
pub fn router(hub: Arc<ConfigHub>, ping_every: Duration, auth: Authenticator) -> axum::Router {
    router_with(hub, ping_every, auth, None)
}

/// The config server's routes; with `pods`, every ack is also written onto the data-plane Pod
/// (what the leader reads), and an ack that cannot be is refused.
pub fn router_with(
    hub: Arc<ConfigHub>,
    ping_every: Duration,
    auth: Authenticator,
    pods: Option<PodReporter>,
) -> axum::Router {
    axum::Router::new()
        .route("/v1/gateways/{namespace}/{name}/config", get(stream))
        .route("/v1/gateways/{namespace}/{name}/ack", post(ack))
        .with_state(ServerState {
            hub,
            ping_every,
            auth: Arc::new(auth),
            pods,
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
    /// The version the data plane runs, if any: the stream resumes from it when it can.
    version: Option<String>,
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
    /// The last version sent (or resumed from) and its config: the next delta's base.
    sent: Option<(String, Arc<dp::Config>)>,
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

/// The next line to send given the current state, if any: a delta from what was sent, or a
/// snapshot when nothing was (or a delta cannot say it).
fn next_update(st: &mut StreamState) -> Option<protocol::Update> {
    let cur = st.rx.borrow_and_update().clone();
    let config = cur.config?;
    let delta = match &st.sent {
        Some((v, _)) if *v == cur.version => return None,
        Some((v, old)) => pylon_config::delta::diff(old, &config).map(|d| (v.clone(), d)),
        None => None,
    };
    let (update, counter) = match delta {
        Some((base, delta)) => (
            protocol::Update::Delta {
                version: cur.version.clone(),
                base,
                delta,
            },
            &crate::metrics::DELTAS_SENT,
        ),
        None => (
            protocol::Update::Snapshot {
                version: cur.version.clone(),
                config: Box::new((*config).clone()),
            },
            &crate::metrics::SNAPSHOTS_SENT,
        ),
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    st.sent = Some((cur.version, config));
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
    let mut rx = hub.subscribe(&key);
    rx.mark_changed();
    let sent = q.version.and_then(|v| hub.recent(&key, &v).map(|c| (v, c)));
    crate::metrics::STREAM_RESUMES.fetch_add(
        u64::from(sent.is_some()),
        std::sync::atomic::Ordering::Relaxed,
    );
    let state = StreamState {
        rx,
        sent,
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
    if crate::version::structure(&a.version).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("version {:?} is not one this controller sent\n", a.version),
        )
            .into_response();
    }
    let ack = PodAck {
        version: a.version,
        accepted: a.accepted,
        error: a.error,
    };
    if let Some(pods) = &server.pods
        && let Err(e) = pods.report(&key, &a.pod, &ack).await
    {
        tracing::warn!(gateway = %key, pod = %a.pod, error = %e, "ack not recorded on the Pod");
        return (e.status(), format!("{e}\n")).into_response();
    }
    crate::metrics::ACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !ack.accepted {
        crate::metrics::REJECTED_ACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(gateway = %key, pod = %a.pod, version = %ack.version, error = ack.error.as_deref().unwrap_or(""), "data plane rejected config");
    }
    server.hub.record_ack(key, a.pod, ack);
    StatusCode::NO_CONTENT.into_response()
}
