//! The request path: listener and route lookup, filters, backend choice, forwarding with
//! timeouts, retries and mirrors, WebSocket upgrades, metrics and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::backend::{BackendRt, Body, BoxError, Tried};
use crate::errors::{Malformed, ProxyError, empty};
use crate::fields::{self, connection_tokens, names_removable_field};
use crate::filters;
use crate::matching::RequestView;
use crate::state::Shared;
use crate::table::{CompiledRule, Filters, Target};
use crate::target;
use pylon_config::RouteKind;

/// Bodies up to this size are buffered when retries or mirrors need to resend them.
const MAX_BUFFERED_BODY: usize = 16 << 20;

/// What the accept loop knows about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub port: u16,
    pub peer: SocketAddr,
    /// `peer`'s IP as a header value (X-Forwarded-For), formatted once per connection.
    pub peer_ip: HeaderValue,
    pub transport: Transport,
}

/// How a client connection arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// With the TLS SNI name (lowercase) if the client sent one.
    Tls {
        sni: Option<String>,
    },
}

impl Transport {
    /// The scheme requests on this connection use (redirects, X-Forwarded-Proto).
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls { .. } => "https",
        }
    }

    pub fn sni(&self) -> Option<&str> {
        match self {
            Transport::Tls { sni } => sni.as_deref(),
            Transport::Plain => None,
        }
    }
}

impl ConnInfo {
    /// A connection accepted on `port` from `peer`.
    pub fn new(port: u16, peer: SocketAddr, transport: Transport) -> Self {
        // An IP's text form is always a valid header value.
        let peer_ip = match peer.ip() {
            std::net::IpAddr::V4(v4) => HeaderValue::from_bytes(ipv4_text(v4, &mut [0; 15])),
            ip => HeaderValue::try_from(ip.to_string()),
        }
        .unwrap_or(HeaderValue::from_static("unknown"));
        ConnInfo {
            port,
            peer,
            peer_ip,
            transport,
        }
    }
}

/// `ip` in dotted decimal, in `buf`, without `core::fmt`, which took 0.8 % of the CPU with one
/// request per connection (`perf`).
fn ipv4_text(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &[u8] {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(octet).as_bytes();
        buf[n..n + digits.len()].copy_from_slice(digits);
        n += digits.len();
    }
    &buf[..n]
}

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
    };
    record(&shared, &conn, start, &done);
    resp
}

/// Is this a gRPC request (by its content type)?
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A served request, for the metrics and the access log.
pub(crate) struct Done<'a> {
    pub method: &'a http::Method,
    pub host: &'a str,
    /// Empty unless the access log is on.
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
}

/// Counts a served request and writes its access-log line (if the log is on).
pub(crate) fn record(shared: &Shared, conn: &ConnInfo, start: Instant, done: &Done<'_>) {
    let latency = start.elapsed();
    let label = done.route.unwrap_or("_none");
    shared.metrics.record(label, done.status, latency);
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

/// The rule a request selected, and the path prefix it matched by (for redirects and
/// rewrites; copied only when the rule has one of those).
pub(crate) struct Selected {
    pub rule: Arc<CompiledRule>,
    pub prefix: Option<String>,
}

/// Finds the listener and the winning rule for a request to `host` (normalised) on the
/// connection's port.
pub(crate) fn select(
    shared: &Shared,
    conn: &ConnInfo,
    host: &str,
    view: &RequestView<'_>,
    grpc: bool,
) -> Result<Selected, ProxyError> {
    // The table is borrowed through an arc-swap guard only for the lookup; the rule (an Arc)
    // outlives it, so a swap during a long request frees the old table once the rule is done.
    let guard = shared.table_guard();
    let table = guard.as_ref().ok_or(ProxyError::NoRoute)?;
    let port = table.ports.get(&conn.port).ok_or(ProxyError::NoRoute)?;
    let listener = port.listener_for(host).ok_or(ProxyError::NoRoute)?;
    if let Some(sni) = conn.transport.sni() {
        let by_sni = port.listener_for(sni).map(|l| l.name.as_str());
        if by_sni != Some(listener.name.as_str()) {
            return Err(ProxyError::Misdirected);
        }
    }
    let found = listener
        .lookup(host, view, grpc)
        .ok_or(ProxyError::NoRoute)?;
    let f = &found.rule.filters;
    let prefix = (f.redirect.is_some() || f.rewrite.is_some())
        .then(|| found.matcher.prefix().map(str::to_string))
        .flatten();
    Ok(Selected {
        rule: found.rule.clone(),
        prefix,
    })
}

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

pub(crate) struct RuleCtx<'a> {
    pub conn: &'a ConnInfo,
    /// What routing matched (`target::Decided::host`).
    pub host: &'a str,
    /// What is forwarded as Host unless a filter rewrites it (`target::Decided::authority`).
    pub authority: &'a HeaderValue,
    pub prefix: Option<&'a str>,
    pub listener_port: u16,
}

/// What a rule does with a request, decided from its head before the body is touched.
pub(crate) enum Plan<'r> {
    /// Answered here: a redirect or a CORS preflight.
    Local(Response<Body>),
    Forward(Outbound<'r>),
}

/// A request on its way to a backend; the request's headers have had the request filters.
pub(crate) struct Outbound<'r> {
    pub backend: Arc<BackendRt>,
    /// The chosen backendRef's own filters.
    pub filters: &'r Filters,
    /// After any URL rewrite.
    pub path_and_query: PathAndQuery,
    /// The Host to send, after any hostname rewrite.
    pub host: HeaderValue,
    /// The request's Origin, kept for CORS response headers.
    pub origin: Option<String>,
}

/// Applies the rule's request-side filters to the head (`headers` modified in place): redirect,
/// CORS preflight, header modifiers, URL rewrite, then the weighted backend choice. Shared by
/// the hyper path and the native HTTP/1.1 path.
pub(crate) fn plan<'r>(
    rule: &'r CompiledRule,
    ctx: &RuleCtx<'_>,
    method: &http::Method,
    uri: &http::Uri,
    headers: &mut HeaderMap,
) -> Result<Plan<'r>, ProxyError> {
    let f = &rule.filters;
    if let Some(cors) = &f.cors
        && filters::is_preflight(method, headers)
    {
        let mut resp = Response::new(empty());
        *resp.headers_mut() = filters::preflight_headers(cors, headers);
        return Ok(Plan::Local(resp));
    }
    // Only CORS needs the Origin after the request is gone.
    let origin = f
        .cors
        .as_ref()
        .and_then(|_| headers.get(header::ORIGIN))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(r) = &f.redirect {
        let input = filters::RedirectInput {
            scheme: ctx.conn.transport.scheme(),
            host: ctx.host,
            listener_port: ctx.listener_port,
            path: uri.path(),
            query: uri.query(),
            prefix: ctx.prefix,
        };
        let (status, location) = filters::redirect(r, &input);
        let mut resp = Response::new(empty());
        *resp.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(Plan::Local(resp));
    }
    if let Some(m) = &f.request_headers {
        filters::modify_headers(headers, m);
    }
    // Rewrites change what is sent upstream, not what matched. Without a rewrite the
    // request's own (normalised) path and the authority it was routed by are forwarded
    // (cheap clones of shared bytes).
    let mut path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut host_header = ctx.authority.clone();
    if let Some(rw) = &f.rewrite {
        let rewrite = ProxyError::BadRequest(Malformed::Rewrite);
        if let Some(p) = &rw.path {
            let path = filters::rewrite_path(uri.path(), p, ctx.prefix);
            let pq = match uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            path_and_query = PathAndQuery::try_from(pq).map_err(|_| rewrite)?;
        }
        if let Some(h) = &rw.hostname {
            host_header = HeaderValue::from_str(h).map_err(|_| rewrite)?;
        }
    }
    let total = rule.total_weight();
    if total == 0 {
        return Err(ProxyError::InvalidBackend);
    }
    let target = rule
        .pick(random() % total)
        .ok_or(ProxyError::InvalidBackend)?;
    let (backend, bfilters) = match target {
        Target::Invalid => return Err(ProxyError::InvalidBackend),
        Target::Backend { backend, filters } => (backend.clone(), &**filters),
    };
    if let Some(m) = &bfilters.request_headers {
        filters::modify_headers(headers, m);
    }
    Ok(Plan::Forward(Outbound {
        backend,
        filters: bfilters,
        path_and_query,
        host: host_header,
        origin,
    }))
}

/// Whether `respond` changes more of an answer's headers than the hop-by-hop ones: the
/// native path relays the backend's head as received (but for those) when it does not.
pub(crate) fn rewrites_response(rule: &CompiledRule, out: &Outbound<'_>) -> bool {
    out.filters.response_headers.is_some()
        || rule.filters.response_headers.is_some()
        || rule.filters.cors.is_some()
}

/// Applies the response-side filters (backendRef's, then the rule's header modifiers, then
/// CORS; keep `rewrites_response` in step) to a backend's answer headers, after the hop-by-hop
/// ones are gone (but for a 101 `Switching Protocols`, whose Connection and Upgrade headers
/// complete the upgrade).
pub(crate) fn respond(
    rule: &CompiledRule,
    out: &Outbound<'_>,
    status: StatusCode,
    headers: &mut HeaderMap,
) {
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    if !upgrade && has_any(headers, &HOP_BY_HOP_RESPONSE) {
        remove_connection_named(headers);
        for h in &HOP_BY_HOP_RESPONSE {
            headers.remove(h);
        }
    }
    if rewrites_response(rule, out) {
        // Filters may not change the transfer codings: the body is relayed still coded.
        let codings: Vec<HeaderValue> = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .cloned()
            .collect();
        for fl in [out.filters, &rule.filters] {
            if let Some(m) = &fl.response_headers {
                filters::modify_headers(headers, m);
            }
        }
        if let Some(cors) = &rule.filters.cors {
            filters::cors_response_headers(cors, out.origin.as_deref(), headers);
        }
        headers.remove(header::TRANSFER_ENCODING);
        for v in codings {
            headers.append(header::TRANSFER_ENCODING, v);
        }
    }
    // Transfer-Encoding is kept (not hop-by-hop here): the body is relayed still coded (gzip,
    // chunked stays so), and only its chunked framing is per hop. But it cannot go with a
    // Content-Length (RFC 9112 §6.3: the coding frames the body), nor on an answer that has no
    // body (§6.1).
    if !upgrade && headers.contains_key(header::TRANSFER_ENCODING) {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            headers.remove(header::TRANSFER_ENCODING);
        } else {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
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
    let mut resp = forward(shared, rule, &out, ctx, req).await?;
    let status = resp.status();
    // A Transfer-Encoding `respond` keeps is dropped by hyper for HTTP/2 clients (HTTP/2 has
    // no transfer codings) and HTTP/1.0 ones.
    respond(rule, &out, status, resp.headers_mut());
    Ok(resp)
}

/// A cheap non-cryptographic random number (weighted choice and mirror sampling).
pub fn random() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = Cell::new({
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        t | 1
    }));
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

// Header names as constants, not strings: a `&str` name is parsed and validated again on every
// lookup, per header, per request.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

// At most 16: `strip_hop_by_hop` keeps which are present in a `u16`.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    // h2c's upgrade settings (RFC 9113 §3.2.1): connection-specific even when the Connection
    // field does not name it.
    HTTP2_SETTINGS,
];

/// Connection-level response headers: they describe the upstream hop, not ours.
/// Transfer-Encoding is not among them: see `respond`.
pub(crate) const HOP_BY_HOP_RESPONSE: [HeaderName; 4] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::UPGRADE,
];

/// Is this a WebSocket upgrade request (RFC 6455 §4.1): `Upgrade` offers `websocket` and
/// `Connection` lists `upgrade`? It is the only upgrade Pylon relays, and only on HTTPRoute
/// rules: any other (h2c above all, which would hand the client an HTTP/2 connection straight
/// to the backend, past every route) is ignored, as RFC 9110 §7.8 allows, and the request is
/// served as an ordinary one with its Upgrade field removed.
pub(crate) fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    fields::connection_lists(h, b"upgrade")
        && fields::list_tokens(h.get_all(header::UPGRADE).iter().map(HeaderValue::as_bytes))
            .any(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// Turns the client's headers into the upstream request's, in place: hop-by-hop headers (and
/// those the Connection header names) go, but gRPC's `te: trailers`; a WebSocket upgrade
/// (`websocket`: see [`is_websocket_upgrade`]) is announced as exactly that; Host,
/// X-Forwarded-For and X-Forwarded-Proto are set.
pub(crate) fn upstream_headers(
    mut h: HeaderMap,
    host: HeaderValue,
    ctx: &RuleCtx<'_>,
    websocket: bool,
) -> HeaderMap {
    strip_hop_by_hop(&mut h);
    if websocket {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    // HTTP/2 upstreams get the Host header too: hyper takes :authority from the URI (the
    // endpoint address), and backends (gRPC included) read the Host header.
    h.insert(header::HOST, host);
    // The peer's address is formatted once per connection; only an incoming
    // X-Forwarded-For costs a new string.
    let appended = h
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|prev| {
            let peer = ctx.conn.peer_ip.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{prev}, {peer}")).ok()
        });
    h.insert(
        X_FORWARDED_FOR,
        appended.unwrap_or_else(|| ctx.conn.peer_ip.clone()),
    );
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(ctx.conn.transport.scheme()),
    );
    h
}

/// Does `h` hold any of `names`? A scan of the (few) names present, cheaper than a hashed
/// lookup per name when, as usual, there is none.
pub(crate) fn has_any(h: &HeaderMap, names: &[HeaderName]) -> bool {
    h.keys().any(|k| names.contains(k))
}

/// Removes the hop-by-hop headers and those the Connection header names, but gRPC's
/// `te: trailers`.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Which of them are present, from one scan of the names: a removal hashes its name, and
    // usually there is none, or only Connection. (A name the Connection field lists and that
    // is removed first is then removed again: a no-op.)
    let mut present = 0u16;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    remove_connection_named(h);
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) == 0 {
            continue;
        }
        let keep = name == header::TE
            && h.get(name)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if !keep {
            h.remove(name);
        }
    }
}

/// Removes the headers a Connection header names (RFC 9110 §7.6.1), never the framing or the
/// Host.
fn remove_connection_named(h: &mut HeaderMap) {
    // Usually empty (`Connection: keep-alive` or `close`): no allocation.
    let named: Vec<HeaderName> = connection_tokens(h)
        .filter(|t| names_removable_field(t))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
}

/// HTTP/2 may split the Cookie field into one field per cookie (RFC 9113 §8.2.3); an HTTP/1.1
/// hop gets them joined into one with `; `, as that section requires.
fn join_cookies(h: &mut HeaderMap) {
    let mut all = h.get_all(header::COOKIE).iter();
    let (Some(_), Some(_)) = (all.next(), all.next()) else {
        return;
    };
    let joined: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        h.insert(header::COOKIE, v);
    }
}

/// Is `e` (a failed send to a backend) the client's body's fault: a malformed chunked coding,
/// or the client gone mid-body? Then the answer is 400, not 502.
fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<ClientBodyError>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An error reading the client's request body, told apart from the backend's failures.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
struct ClientBodyError(#[source] hyper::Error);

/// Whether a backend's answer, as hyper's client read it, is framed so that relaying it is
/// safe: an HTTP/1.0 answer may not carry Transfer-Encoding (RFC 9112 §6.1: faulty framing),
/// and chunked may be applied once (§7); and its head is within the limit the native relay
/// applies. hyper's own buffer limit is checked between reads, so a head that arrives whole
/// can exceed it: the fields are counted here as they would be written (`name: value\r\n`).
fn answer_framing_ok(resp: &Response<Incoming>) -> bool {
    let c = fields::transfer_codings(resp.headers());
    let head: usize = resp
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    !(c.any && resp.version() == Version::HTTP_10)
        && c.chunked <= 1
        && head <= fields::MAX_RESPONSE_HEAD
}

enum ReqBody {
    Stream(Option<Incoming>),
    Buffered(Bytes),
}

impl ReqBody {
    fn take(&mut self) -> Body {
        match self {
            ReqBody::Stream(b) => match b.take() {
                Some(b) => b
                    .map_err(|e| Box::new(ClientBodyError(e)) as BoxError)
                    .boxed(),
                None => empty(),
            },
            ReqBody::Buffered(b) => Full::new(b.clone()).map_err(|never| match never {}).boxed(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Arc<Shared>,
    rule: &CompiledRule,
    out: &Outbound<'_>,
    ctx: &RuleCtx<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (backend, bfilters, path_and_query) = (&out.backend, out.filters, &out.path_and_query);
    let upgrade = rule.kind == RouteKind::Http
        && req.version() == Version::HTTP_11
        && is_websocket_upgrade(req.headers());
    let h2 = backend.is_h2();
    if req.version() == Version::HTTP_2 {
        join_cookies(req.headers_mut());
    }
    let mut headers = upstream_headers(
        std::mem::take(req.headers_mut()),
        out.host.clone(),
        ctx,
        upgrade,
    );
    let method = req.method().clone();
    let retry = rule.retry.as_ref();
    let mirrors: Vec<_> = rule
        .filters
        .mirrors
        .iter()
        .chain(&bfilters.mirrors)
        .filter(|(_, pct)| *pct >= 100.0 || (random() % 10_000) as f64 / 100.0 < *pct)
        .map(|(b, _)| b.clone())
        .collect();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let mut body = if retry.is_some() || !mirrors.is_empty() {
        let limited = Limited::new(req.into_body(), MAX_BUFFERED_BODY);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ProxyError::BodyTooLarge
                } else {
                    ProxyError::BadRequest(Malformed::Body)
                }
            })?
            .to_bytes();
        ReqBody::Buffered(bytes)
    } else if http_body::Body::is_end_stream(req.body()) {
        // No body (most GETs): the request can go again after a failed connect.
        ReqBody::Buffered(Bytes::new())
    } else {
        ReqBody::Stream(Some(req.into_body()))
    };
    for m in mirrors {
        let Some(ep) = m.pick() else { continue };
        let mut mreq = Request::new(body_clone(&body));
        *mreq.method_mut() = method.clone();
        *mreq.uri_mut() = m.uri(ep, path_and_query);
        *mreq.headers_mut() = headers.clone();
        if m.is_h2() {
            *mreq.version_mut() = Version::HTTP_2;
        }
        // Fire and forget: the mirror's answer (or failure) never affects the response.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                if let Ok(r) = m.send(ep, mreq).await {
                    let _ = r.into_body().collect().await;
                }
            })
            .await;
        });
    }
    let attempts = 1 + retry.map_or(0, |r| r.attempts);
    let backoff = retry
        .and_then(|r| r.backoff)
        .map_or(Duration::from_millis(25), |d| d.0);
    let mut last = ProxyError::NoEndpoints;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(backoff * (1 << (attempt - 1).min(6))).await;
        }
        let mut ep = backend.pick().ok_or(ProxyError::NoEndpoints)?;
        // A failed connect goes to another endpoint only with a body that can be sent again
        // (`failover` then finds whether there is another endpoint to send it to).
        let replayable = matches!(body, ReqBody::Buffered(_));
        let can_fail_over = replayable && backend.endpoints.len() > 1;
        let mut tried = Tried::first(ep);
        let result = loop {
            let mut up = Request::new(body.take());
            *up.method_mut() = method.clone();
            *up.uri_mut() = backend.uri(ep, path_and_query);
            // The last attempt that cannot fail over (the only one, without retries, to a
            // backend of one endpoint or without a body to send again) takes the headers
            // instead of a copy.
            *up.headers_mut() = if attempt + 1 == attempts && !can_fail_over {
                std::mem::take(&mut headers)
            } else {
                headers.clone()
            };
            if h2 {
                *up.version_mut() = Version::HTTP_2;
            }
            let send = backend.send(ep, up);
            let result = match rule.backend_timeout {
                Some(t) => tokio::time::timeout(t, send)
                    .await
                    .map_err(|_| ProxyError::Timeout),
                None => Ok(send.await),
            };
            match &result {
                // Nothing was sent: another endpoint takes the request, within this attempt.
                Ok(Err(e)) if e.is_connect() && replayable => {
                    if let Some(next) = backend.failover(&mut tried) {
                        ep = next;
                        continue;
                    }
                }
                Ok(Ok(_)) => backend.health.connected(ep),
                _ => {}
            }
            break result;
        };
        let resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) if client_body_failed(&e) => {
                return Err(ProxyError::BadRequest(Malformed::Body));
            }
            Ok(Err(e)) => {
                last = if e.is_connect() {
                    ProxyError::Connect
                } else {
                    ProxyError::Upstream
                };
                tracing::debug!(backend = %backend.name, addr = %backend.endpoints[ep], error = %e, "upstream error");
                if matches!(body, ReqBody::Buffered(_)) {
                    continue;
                }
                return Err(last);
            }
            Err(timeout) => {
                last = timeout;
                if retry.is_some_and(|r| r.codes.contains(&504)) {
                    continue;
                }
                return Err(timeout);
            }
        };
        let status = resp.status();
        if !answer_framing_ok(&resp) {
            return Err(ProxyError::Upstream);
        }
        if attempt + 1 < attempts && retry.is_some_and(|r| r.codes.contains(&status.as_u16())) {
            continue;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // Only the WebSocket upgrade the client asked for completes; a 101 it did not ask
            // for (or to another protocol) would hand it a raw tunnel to the backend.
            return match client_upgrade {
                Some(client_up) if is_websocket_upgrade(resp.headers()) => {
                    Ok(tunnel(shared, client_up, resp))
                }
                _ => Err(ProxyError::Upstream),
            };
        }
        return Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()));
    }
    Err(last)
}

fn body_clone(b: &ReqBody) -> Body {
    match b {
        ReqBody::Buffered(bytes) => Full::new(bytes.clone())
            .map_err(|never| match never {})
            .boxed(),
        ReqBody::Stream(_) => empty(),
    }
}

/// Completes a WebSocket upgrade: answers 101 and splices the two connections.
fn tunnel(
    shared: &Arc<Shared>,
    client: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
) -> Response<Body> {
    let upstream = hyper::upgrade::on(&mut resp);
    let shared = shared.clone();
    tokio::spawn(async move {
        let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
            return;
        };
        shared
            .metrics
            .active_connections
            .fetch_add(1, Ordering::Relaxed);
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        shared
            .metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_the_standard_form() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "1.20.100.9",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(ipv4_text(ip, &mut [0; 15]), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn every_hop_by_hop_field_present_goes_and_the_rest_stay() {
        let fields = [
            ("connection", "close, x-named"),
            ("x-named", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("x-kept", "yes"),
            ("content-length", "0"),
        ];
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(n, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept", "content-length"]);

        // gRPC's `te: trailers` stays; h2c's settings go, named or not.
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("upgrade"));
        h.append("upgrade", HeaderValue::from_static("h2c"));
        h.append(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAARAAAAAAAIAAAAA"),
        );
        h.append("te", HeaderValue::from_static("trailers"));
        h.append("keep-alive", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["te"]);
    }

    #[test]
    fn only_websocket_is_an_upgrade_and_only_with_connection_upgrade() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(*n, HeaderValue::from_static(v));
            }
            h
        };
        assert!(is_websocket_upgrade(&h(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!is_websocket_upgrade(&h(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c")
        ])));
        assert!(
            !is_websocket_upgrade(&h(&[("upgrade", "websocket")])),
            "no Connection: upgrade"
        );
        assert!(!is_websocket_upgrade(&h(&[("connection", "upgrade")])));
    }

    #[test]
    fn http2_cookie_fields_are_joined_for_http1() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(
            h.get_all(header::COOKIE).iter().collect::<Vec<_>>(),
            ["a=1; b=2"]
        );
    }
}
