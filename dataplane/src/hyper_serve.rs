//! Serving a client connection with hyper: HTTP/2 (by ALPN or, on plain TCP, by its preface),
//! HTTP/1.1 when `--http1 hyper` asks for it, and what the native engine hands over (upgrades,
//! requests it does not parse). Each request goes to [`proxy::handle`].

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

use crate::idle::{Activity, InFlight, Tracked};
use crate::limits::Limits;
use crate::proxy::{self, ConnInfo, Transport};
use crate::state::Shared;

/// Which HTTP versions a client connection may speak, from how it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// Plain TCP: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
    Any,
    /// TLS without ALPN `h2`: HTTP/1.1 only (no HTTP/2 preface after ALPN `http/1.1`).
    Http1,
    /// TLS with ALPN `h2`: HTTP/2 only (RFC 9113 §3.3; h2spec 3.5).
    Http2,
}

impl Versions {
    /// For a connection that arrived by `transport`, with ALPN `h2` negotiated or not.
    pub fn of(transport: &Transport, h2: bool) -> Self {
        match (transport, h2) {
            (_, true) => Versions::Http2,
            (Transport::Tls { .. }, false) => Versions::Http1,
            (Transport::Plain, false) => Versions::Any,
        }
    }
}

/// Runs a hyper connection until it ends, the listener drains, or it has been idle (no request
/// and no bytes moving) for the idle timeout; the last two shut it down gracefully. A macro, not
/// a generic `async fn`: the connection types (hyper's HTTP/1.1 with upgrades, hyper-util's
/// auto) share no trait for `graceful_shutdown`, and a generic async fn over them trips rustc's
/// higher-ranked `Send` inference for the spawned task.
macro_rules! drive {
    ($conn:expr, $activity:expr, $idle:expr, $drain:expr) => {{
        let (activity, idle, mut drain) = ($activity, $idle, $drain);
        let conn = $conn;
        tokio::pin!(conn);
        if *drain.borrow() {
            conn.as_mut().graceful_shutdown();
        }
        // Watchdog: close connections with no request and no bytes moving for the idle timeout.
        // `interval_at`, not `interval`: an interval's first tick is immediate, which would cost
        // every connection (a new one per request with `Connection: close`) an extra wake-up.
        let period = (idle / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = drain.wait_for(|d| *d) => break,
                _ = tick.tick() => if activity.idle_for(idle) { break },
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }};
}

/// Serves a connection with hyper (HTTP/1.1 or, by preface or ALPN, HTTP/2), in the
/// `versions` it may speak.
pub async fn serve_http<I>(
    io: I,
    info: Arc<ConnInfo>,
    shared: &Arc<Shared>,
    limits: &Limits,
    drain: watch::Receiver<bool>,
    versions: Versions,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = Tracked::new(io, activity.clone());
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let service = service_fn(move |req| {
        let (shared, info) = (svc_shared.clone(), info.clone());
        let guard = InFlight::start(&svc_activity);
        async move {
            let resp = proxy::handle(shared, info, req).await;
            drop(guard);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    // One builder per case, because hyper-util's `http1_only`/`http2_only` are ignored by
    // `serve_connection_with_upgrades`: after ALPN `h2` an HTTP/1.1 request must not be served,
    // nor an HTTP/2 preface after ALPN `http/1.1`.
    let max_buf = limits.max_header_bytes.max(8192);
    match versions {
        Versions::Http1 => {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(max_buf)
                .serve_connection(io, service)
                .with_upgrades();
            drive!(conn, activity, limits.idle_timeout, drain)
        }
        Versions::Http2 | Versions::Any => {
            let mut any = auto::Builder::new(TokioExecutor::new());
            if versions == Versions::Http2 {
                any = any.http2_only();
            }
            any.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(max_buf);
            any.http2()
                .timer(TokioTimer::new())
                .max_header_list_size(limits.max_header_bytes as u32)
                .keep_alive_interval(Some(limits.idle_timeout / 2))
                .keep_alive_timeout(Duration::from_secs(20));
            if versions == Versions::Http2 {
                let conn = any.serve_connection(io, service);
                drive!(conn, activity, limits.idle_timeout, drain)
            } else {
                let conn = any.serve_connection_with_upgrades(io, service);
                drive!(conn, activity, limits.idle_timeout, drain)
            }
        }
    }
}
