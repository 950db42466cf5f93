//! Forwarding a planned request to its backend over the hyper path: the upstream head, the
//! body (buffered when retries or mirrors must send it again), mirrors, retries with backoff,
//! failover to another endpoint after a failed connect (streamed bodies too: see
//! [`ReqBody`]), the answer's framing check, and the WebSocket upgrade.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::headers::{join_cookies, upstream_headers};
use super::plan::{Outbound, RuleCtx};
use super::tunnel::tunnel;
use crate::backend::Tried;
use crate::body::{Body, BoxError, empty};
use crate::errors::{Malformed, ProxyError};
use crate::fields;
use crate::hop_by_hop::is_websocket_upgrade;
use crate::random::random;
use crate::state::Shared;
use crate::table::CompiledRule;
use pylon_config::RouteKind;

/// Bodies up to this size are buffered when retries or mirrors need to resend them.
const MAX_BUFFERED_BODY: usize = 16 << 20;

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
    /// Streamed to the backend as it arrives; in a slot that the body sent upstream takes it
    /// from on its first poll, so that after a failed connect (the client never polls the
    /// body before it has a connection) it is still there to go to another endpoint.
    Stream(Arc<Mutex<Option<Incoming>>>),
    Buffered(Bytes),
}

impl ReqBody {
    fn take(&mut self) -> Body {
        match self {
            ReqBody::Stream(slot) => {
                if slot.lock().expect("body slot").is_none() {
                    return empty();
                }
                Unsent {
                    slot: Arc::clone(slot),
                    body: None,
                }
                .map_err(|e| Box::new(ClientBodyError(e)) as BoxError)
                .boxed()
            }
            ReqBody::Buffered(b) => Full::new(b.clone()).map_err(|never| match never {}).boxed(),
        }
    }

    /// The body can be sent (again) whole: buffered, or streamed and not yet read from.
    fn can_send(&self) -> bool {
        match self {
            ReqBody::Stream(slot) => slot.lock().expect("body slot").is_some(),
            ReqBody::Buffered(_) => true,
        }
    }
}

/// The client's streamed body as sent upstream: left in its slot until first polled.
struct Unsent {
    slot: Arc<Mutex<Option<Incoming>>>,
    body: Option<Incoming>,
}

impl Unsent {
    /// The body, taken from the slot on first use.
    fn body(&mut self) -> Option<&mut Incoming> {
        if self.body.is_none() {
            self.body = self.slot.lock().expect("body slot").take();
        }
        self.body.as_mut()
    }
}

impl http_body::Body for Unsent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut().body() {
            Some(b) => std::pin::Pin::new(b).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    // Asked before the first poll (to frame the head): answered from the slot, leaving it.
    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(b) => b.is_end_stream(),
            None => self
                .slot
                .lock()
                .expect("body slot")
                .as_ref()
                .is_none_or(|b| b.is_end_stream()),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => self
                .slot
                .lock()
                .expect("body slot")
                .as_ref()
                .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
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
        ReqBody::Stream(Arc::new(Mutex::new(Some(req.into_body()))))
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
        // A failed connect goes to another endpoint (`failover` finds whether there is one)
        // with the body still whole: buffered, or streamed and not yet read from (a failed
        // connect reads nothing of it).
        let can_fail_over = backend.endpoints.len() > 1;
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
                Ok(Err(e)) if e.is_connect() && body.can_send() => {
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
