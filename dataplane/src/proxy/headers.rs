//! The fields a forwarded request gains or has rewritten: Host, X-Forwarded-For,
//! X-Forwarded-Proto, and HTTP/2's split Cookie fields joined for an HTTP/1.1 hop.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::plan::RuleCtx;
use crate::hop_by_hop::strip_hop_by_hop;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Turns the client's headers into the upstream request's, in place: hop-by-hop headers (and
/// those the Connection header names) go, but gRPC's `te: trailers`; a WebSocket upgrade
/// (`websocket`: see [`crate::hop_by_hop::is_websocket_upgrade`]) is announced as exactly that; Host,
/// X-Forwarded-For and X-Forwarded-Proto are set.
pub fn upstream_headers(
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

/// HTTP/2 may split the Cookie field into one field per cookie (RFC 9113 §8.2.3); an HTTP/1.1
/// hop gets them joined into one with `; `, as that section requires.
pub(super) fn join_cookies(h: &mut HeaderMap) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
