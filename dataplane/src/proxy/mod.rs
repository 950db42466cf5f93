//! The request path over hyper: listener and route lookup, filters, backend choice,
//! forwarding with timeouts, retries and mirrors, WebSocket upgrades, metrics and the access
//! log. In files by stage: [`conn`] (what a connection is), [`plan`] (route selection and the
//! rule's filters), [`headers`] (what a forwarded request gains), [`forward`] (sending it,
//! retries, mirrors), [`tunnel`] (upgrades).

mod conn;
mod forward;
mod headers;
mod plan;
mod tunnel;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

pub use conn::{ConnInfo, Transport};
pub use headers::upstream_headers;
pub use plan::{Outbound, Plan, RuleCtx, Selected, plan, respond, rewrites_response, select};

use crate::body::Body;
use crate::errors::ProxyError;
use crate::matching::RequestView;
use crate::metrics::Engine;
use crate::state::Shared;
use crate::table::CompiledRule;
use crate::target;

/// Serves one request; never fails (errors become responses).
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let grpc = is_grpc(req.headers());
    let method = req.method().clone();
    let decided = target::decide(&method, req.version(), req.uri(), req.headers());
    let decided = decided.map(|mut d| {
        d.apply(req.uri_mut());
        d
    });
    // Only the access log needs an owned copy of the path (as routed, if it was).
    let path = if shared.access_log.load(Ordering::Relaxed) {
        req.uri().path().to_string()
    } else {
        String::new()
    };
    let (host, routed) = match decided {
        Ok(d) => {
            let host = d.host().into_owned();
            let routed = route_and_forward(&shared, &conn, req, &host, &d.authority, grpc).await;
            (host, routed)
        }
        Err(e) => (String::new(), Err((None, e))),
    };
    let (route, resp) = match routed {
        Ok((route, resp)) => (route, resp),
        Err((route, e)) => (route, e.into_response(grpc)),
    };
    let done = Done {
        method: &method,
        host: &host,
        path: &path,
        route: route.as_deref(),
        status: resp.status().as_u16(),
        engine: Engine::Hyper,
    };
    record(&shared, &conn, start, &done);
    resp
}

/// Is this a gRPC request (by its content type)?
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A served request, for the metrics and the access log.
pub struct Done<'a> {
    pub method: &'a http::Method,
    pub host: &'a str,
    /// Empty unless the access log is on.
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub engine: Engine,
}

/// Counts a served request and writes its access-log line (if the log is on).
pub fn record(shared: &Shared, conn: &ConnInfo, start: Instant, done: &Done<'_>) {
    let latency = start.elapsed();
    let label = done.route.unwrap_or("_none");
    shared
        .metrics
        .record(label, done.status, latency, done.engine);
    if shared.access_log.load(Ordering::Relaxed) {
        shared.log.log(&crate::accesslog::Line {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            peer: conn.peer,
            port: conn.port,
            method: done.method.as_str(),
            host: done.host,
            path: done.path,
            status: done.status,
            route: label,
            duration_ms: latency.as_secs_f64() * 1000.0,
        });
    }
}

type Routed = Result<(Option<Arc<str>>, Response<Body>), (Option<Arc<str>>, ProxyError)>;

async fn route_and_forward(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    req: Request<Incoming>,
    host: &str,
    authority: &HeaderValue,
    grpc: bool,
) -> Routed {
    let view = RequestView {
        method: req.method(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let Selected { rule, prefix } =
        select(shared, conn, host, &view, grpc).map_err(|e| (None, e))?;
    let label = Some(rule.route.clone());
    let ctx = RuleCtx {
        conn,
        host,
        authority,
        prefix: prefix.as_deref(),
        listener_port: conn.port,
    };
    let fut = serve_rule(shared, &rule, &ctx, req);
    // The request timeout covers the whole response: the wait for its head here, its body
    // through `deadline::until`.
    let result = match rule.request_timeout {
        Some(t) => {
            let deadline = tokio::time::Instant::now() + t;
            match tokio::time::timeout_at(deadline, fut).await {
                Ok(r) => r.map(|resp| resp.map(|b| crate::deadline::until(b, deadline))),
                Err(_) => Err(ProxyError::Timeout),
            }
        }
        None => fut.await,
    };
    result.map(|r| (label.clone(), r)).map_err(|e| (label, e))
}

async fn serve_rule(
    shared: &Arc<Shared>,
    rule: &CompiledRule,
    ctx: &RuleCtx<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let out = match plan(rule, ctx, &method, &uri, req.headers_mut())? {
        Plan::Local(resp) => return Ok(resp),
        Plan::Forward(out) => out,
    };
    let mut resp = forward::forward(shared, rule, &out, ctx, req).await?;
    let status = resp.status();
    // A Transfer-Encoding `respond` keeps is dropped by hyper for HTTP/2 clients (HTTP/2 has
    // no transfer codings) and HTTP/1.0 ones.
    respond(rule, &out, status, resp.headers_mut());
    Ok(resp)
}
