//! One request forwarded by the native path: upstream head and body out, answer head and body
//! back, on a pooled backend connection owned by this task for the exchange.

use std::net::SocketAddr;

use bytes::Buf;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{ClientIo, Conn, Ended, read_some};
use crate::backend::{BackendRt, Tried};
use crate::errors::{Malformed, ProxyError};
use crate::h1::buffers;
use crate::h1::framing::Framing;
use crate::h1::head::{self, RequestHead, ResponseHead};
use crate::h1::timer::Elapsed;
use crate::proxy::{self, Outbound, Plan, RuleCtx};
use crate::table::CompiledRule;
use crate::tcp_pool as upstream;

/// Why an exchange with the backend failed before its answer began.
enum SendFailure {
    /// Nothing came back: on a reused connection, the backend may have closed it just as we
    /// wrote, and a replayable request can go again on a new one.
    NoAnswer,
    /// Any other failure.
    Failed(ProxyError),
}

/// Forwards `head` (its body follows in the client connection) per `rule`. `Err` = nothing was
/// written to the client unless `c.committed` is set.
pub(super) async fn run<I: ClientIo>(
    c: &mut Conn<I>,
    rule: &CompiledRule,
    ctx: &RuleCtx<'_>,
    head: &mut RequestHead,
) -> Result<Ended, ProxyError> {
    let out = match proxy::plan(rule, ctx, &head.method, &head.uri, &mut head.headers)? {
        Plan::Local(resp) => return Ok(c.answer(head, resp).await),
        Plan::Forward(out) => out,
    };
    let ep = out.backend.pick().ok_or(ProxyError::NoEndpoints)?;
    let headers = std::mem::take(&mut head.headers);
    let mut headers = proxy::upstream_headers(headers, out.host.clone(), ctx, false);
    // The body is relayed by the framing parsed from the client's head, so the upstream head
    // must announce exactly that framing, whatever the client's Connection header or the
    // filters removed or set: otherwise the backend would read the body as further requests.
    if crate::hop_by_hop::has_any(
        &headers,
        &[header::TRANSFER_ENCODING, header::CONTENT_LENGTH],
    ) {
        headers.remove(header::TRANSFER_ENCODING);
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Framing::Length(n) = c.req_body {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if c.out.capacity() == 0 {
        // One allocation for the heads of this connection, not a few doublings.
        c.out.reserve(1024);
    }
    c.out.clear();
    head::write_request(&mut c.out, &head.method, &out.path_and_query, &headers);
    drop(headers);
    // The body bytes that came with the head go in the same write.
    let (n, _) = c
        .req_body
        .take(&c.rd)
        .map_err(|_| ProxyError::BadRequest(Malformed::Body))?;
    c.out.extend_from_slice(&c.rd[..n]);
    c.rd.advance(n);
    let replayable = c.req_body.is_done() && head.method.is_idempotent();
    let verbatim = !proxy::rewrites_response(rule, &out);
    let sent = send(c, &out.backend, ep, replayable, &head.method, verbatim);
    let (up, resp, addr) = match rule.backend_timeout {
        Some(t) => tokio::time::timeout(t, sent)
            .await
            .map_err(|_| ProxyError::Timeout)??,
        None => sent.await?,
    };
    relay_answer(c, rule, &out, head.close, addr, up, resp).await
}

/// Sends the request in `c.out` (and the rest of its body) to endpoint `ep` of `backend`, on
/// a pooled or new connection, and reads the answer's head (with `verbatim`, into `c.out`: see
/// `head::parse_response`). A failed connect moves on to another endpoint (nothing was sent);
/// the answer comes with the address that gave it.
async fn send<I: ClientIo>(
    c: &mut Conn<I>,
    backend: &BackendRt,
    mut ep: usize,
    replayable: bool,
    method: &Method,
    verbatim: bool,
) -> Result<(TcpStream, ResponseHead, SocketAddr), ProxyError> {
    let mut addr = backend.endpoints[ep];
    let mut pooled = upstream::checkout(addr);
    let mut tried = Tried::first(ep);
    loop {
        let reused = pooled.is_some();
        let mut up = match pooled.take() {
            Some(up) => up,
            None => match upstream::connect(addr, backend.connect_timeout).await {
                Ok(up) => {
                    backend.health.connected(ep);
                    up
                }
                Err(_) => {
                    ep = backend.failover(&mut tried).ok_or(ProxyError::Connect)?;
                    addr = backend.endpoints[ep];
                    pooled = upstream::checkout(addr);
                    continue;
                }
            },
        };
        match exchange_head(c, &mut up, method, verbatim).await {
            Ok(resp) => return Ok((up, resp, addr)),
            Err(SendFailure::NoAnswer) if reused && replayable => {
                tracing::debug!(%addr, "pooled connection closed; resending on a new one");
            }
            // A new connection closed without a byte of answer (a backend Pod killed while
            // the request was on its way): an idempotent request with its body all in `c.out`
            // goes to another endpoint, as nginx's default `proxy_next_upstream error` does.
            Err(SendFailure::NoAnswer) if replayable => {
                tracing::debug!(%addr, "connection closed without an answer; trying another endpoint");
                ep = backend
                    .next_untried(&mut tried)
                    .ok_or(ProxyError::Upstream)?;
                addr = backend.endpoints[ep];
                pooled = upstream::checkout(addr);
            }
            Err(SendFailure::NoAnswer) => return Err(ProxyError::Upstream),
            Err(SendFailure::Failed(e)) => return Err(e),
        }
    }
}

async fn exchange_head<I: ClientIo>(
    c: &mut Conn<I>,
    up: &mut TcpStream,
    method: &Method,
    verbatim: bool,
) -> Result<ResponseHead, SendFailure> {
    // Waits on the backend are bounded by the rule's timeouts only (as on the hyper path); the
    // idle timeout bounds waits on the client, which must keep its body coming.
    let idle = c.limits.idle_timeout;
    let timed_out = |Elapsed| SendFailure::Failed(ProxyError::Timeout);
    up.write_all(&c.out)
        .await
        .map_err(|_| SendFailure::NoAnswer)?;
    // The rest of the request body, as it arrives from the client.
    while !c.req_body.is_done() {
        let got = c
            .timer
            .run_for(idle, read_some(&mut c.io, &mut c.rd))
            .await
            .map_err(timed_out)?;
        if !matches!(got, Ok(n) if n > 0) {
            // The client went away mid-body.
            return Err(SendFailure::Failed(ProxyError::BadRequest(Malformed::Body)));
        }
        let (n, _) = c
            .req_body
            .take(&c.rd)
            .map_err(|_| SendFailure::Failed(ProxyError::BadRequest(Malformed::Body)))?;
        up.write_all(&c.rd[..n])
            .await
            .map_err(|_| SendFailure::Failed(ProxyError::Upstream))?;
        c.rd.advance(n);
    }
    if c.urd.capacity() == 0 {
        c.urd = buffers::take();
    }
    c.urd.clear();
    // Whether an interim answer went to the client: the request was answered, and may not go
    // again.
    let mut interim = false;
    loop {
        let got = read_some(up, &mut c.urd).await;
        match got {
            Ok(n) if n > 0 => {}
            _ if c.urd.is_empty() && !interim => return Err(SendFailure::NoAnswer),
            _ => return Err(SendFailure::Failed(ProxyError::Upstream)),
        }
        // `c.out` still holds the request until a final answer's head replaces it: a request
        // that got no answer may go again.
        while let Some(resp) =
            head::parse_response(&mut c.urd, method, verbatim.then_some(&mut c.out))
                .map_err(|_| SendFailure::Failed(ProxyError::Upstream))?
        {
            match resp.status {
                // Not asked for (upgrades go through hyper), and what follows it is not HTTP.
                StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(SendFailure::Failed(ProxyError::Upstream));
                }
                // Not asked for either: the native path serves no `Expect: 100-continue`.
                StatusCode::CONTINUE => {}
                // Other interim answers (103 Early Hints) are forwarded (RFC 9110 §15.2).
                s if s.is_informational() => {
                    let mut interim_head = Vec::new();
                    let mut headers = resp.headers.unwrap_or_default();
                    for name in &crate::hop_by_hop::HOP_BY_HOP_RESPONSE {
                        headers.remove(name);
                    }
                    head::write_response(&mut interim_head, s, &headers);
                    c.write_to_client(&interim_head)
                        .await
                        .map_err(|_| SendFailure::Failed(ProxyError::Upstream))?;
                    interim = true;
                }
                _ => return Ok(resp),
            }
        }
    }
}

/// Writes into `buf` the head of an answer whose headers the filters change: the filtered
/// headers with our framing and, if `close`, `Connection: close`.
fn filtered_head(
    buf: &mut Vec<u8>,
    rule: &CompiledRule,
    out: &Outbound<'_>,
    status: StatusCode,
    body: &Framing,
    mut headers: http::HeaderMap,
    close: bool,
) {
    proxy::respond(rule, out, status, &mut headers);
    // Our framing, whatever the filters did.
    match body {
        Framing::Length(n) => {
            // Usually the backend's one Content-Length already says so: keep it (no new value).
            let mut given = headers.get_all(header::CONTENT_LENGTH).iter();
            let same = match (given.next(), given.next()) {
                (Some(v), None) => v.to_str().ok().and_then(|v| v.parse().ok()) == Some(*n),
                _ => false,
            };
            if !same {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(*n));
            }
        }
        // The backend's Transfer-Encoding, kept by `respond`, frames the body.
        Framing::Chunked(_) | Framing::UntilClose => {
            headers.remove(header::CONTENT_LENGTH);
        }
        // No body (a HEAD's answer): no framing by a coding.
        Framing::Empty => {
            headers.remove(header::TRANSFER_ENCODING);
        }
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    buf.clear();
    head::write_response(buf, status, &headers);
}

/// Writes the answer's head with the body bytes already read, relays the rest of the body, and
/// returns the backend connection to the pool if it can carry another request.
async fn relay_answer<I: ClientIo>(
    c: &mut Conn<I>,
    rule: &CompiledRule,
    out: &Outbound<'_>,
    client_close: bool,
    addr: SocketAddr,
    mut up: TcpStream,
    resp: ResponseHead,
) -> Result<Ended, ProxyError> {
    let status = resp.status;
    let mut body = resp.body;
    let close =
        client_close || body == Framing::UntilClose || !c.req_body.is_done() || *c.drain.borrow();
    match resp.headers {
        // The head as received is in `c.out` already.
        None => head::end_verbatim_response(&mut c.out, &body, close),
        Some(headers) => filtered_head(&mut c.out, rule, out, status, &body, headers, close),
    }
    let (n, mut done) = body.take(&c.urd).map_err(|_| ProxyError::Upstream)?;
    c.out.extend_from_slice(&c.urd[..n]);
    c.urd.advance(n);
    c.committed = Some(status.as_u16());
    c.write_client(None)
        .await
        .map_err(|_| ProxyError::Upstream)?;
    while !done {
        c.urd.clear();
        match read_some(&mut up, &mut c.urd).await {
            Ok(0) if body == Framing::UntilClose => break,
            Ok(0) | Err(_) => return Err(ProxyError::Upstream),
            Ok(_) => {}
        }
        let (n, end) = body.take(&c.urd).map_err(|_| ProxyError::Upstream)?;
        done = end;
        c.write_client(Some(n))
            .await
            .map_err(|_| ProxyError::Upstream)?;
        c.urd.advance(n);
    }
    // Reusable only if the answer ended exactly where its framing said.
    if done && !resp.close && c.urd.is_empty() {
        upstream::checkin(addr, up);
    }
    c.urd.clear();
    Ok(Ended::Answered {
        status: status.as_u16(),
        close,
    })
}
