//! From a request's head to what a rule does with it: the listener and rule it selects, then
//! the rule's request-side filters (redirect, CORS preflight, header modifiers, URL rewrite)
//! and the weighted backend choice; and the response-side filters on the way back. Shared by
//! the hyper path and the native HTTP/1.1 path.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Response, StatusCode};

use super::conn::ConnInfo;
use crate::backend::BackendRt;
use crate::body::{Body, empty};
use crate::errors::{Malformed, ProxyError};
use crate::filters;
use crate::hop_by_hop::{HOP_BY_HOP_RESPONSE, has_any, remove_connection_named};
use crate::matching::RequestView;
use crate::state::Shared;
use crate::table::{CompiledRule, Filters, Target};

/// The rule a request selected, and the path prefix it matched by (for redirects and
/// rewrites; copied only when the rule has one of those).
pub struct Selected {
    pub rule: Arc<CompiledRule>,
    pub prefix: Option<String>,
}

/// Finds the listener and the winning rule for a request to `host` (normalised) on the
/// connection's port.
pub fn select(
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

pub struct RuleCtx<'a> {
    pub conn: &'a ConnInfo,
    /// What routing matched (`target::Decided::host`).
    pub host: &'a str,
    /// What is forwarded as Host unless a filter rewrites it (`target::Decided::authority`).
    pub authority: &'a HeaderValue,
    pub prefix: Option<&'a str>,
    pub listener_port: u16,
}

/// What a rule does with a request, decided from its head before the body is touched.
pub enum Plan<'r> {
    /// Answered here: a redirect or a CORS preflight.
    Local(Response<Body>),
    Forward(Outbound<'r>),
}

/// A request on its way to a backend; the request's headers have had the request filters.
pub struct Outbound<'r> {
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
pub fn plan<'r>(
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
    let target = rule.pick_random().ok_or(ProxyError::InvalidBackend)?;
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
pub fn rewrites_response(rule: &CompiledRule, out: &Outbound<'_>) -> bool {
    out.filters.response_headers.is_some()
        || rule.filters.response_headers.is_some()
        || rule.filters.cors.is_some()
}

/// Applies the response-side filters (backendRef's, then the rule's header modifiers, then
/// CORS; keep `rewrites_response` in step) to a backend's answer headers, after the hop-by-hop
/// ones are gone (but for a 101 `Switching Protocols`, whose Connection and Upgrade headers
/// complete the upgrade).
pub fn respond(
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
