//! The hop-by-hop fields (RFC 9110 §7.6.1): which fields describe one connection and not the
//! message, and removing them, with those the Connection field names, before a message is
//! relayed. Shared by the HTTP/1.1 codec and the proxy; imports only the field parsers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::fields::{self, connection_tokens, names_removable_field};

// Header names as constants, not strings: a `&str` name is parsed and validated again on every
// lookup, per header, per request.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
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
pub const HOP_BY_HOP_RESPONSE: [HeaderName; 4] = [
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
pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    fields::connection_lists(h, b"upgrade")
        && fields::list_tokens(h.get_all(header::UPGRADE).iter().map(HeaderValue::as_bytes))
            .any(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// Does `h` hold any of `names`? A scan of the (few) names present, cheaper than a hashed
/// lookup per name when, as usual, there is none.
pub fn has_any(h: &HeaderMap, names: &[HeaderName]) -> bool {
    h.keys().any(|k| names.contains(k))
}

/// Removes the hop-by-hop headers and those the Connection header names, but gRPC's
/// `te: trailers`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
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
pub fn remove_connection_named(h: &mut HeaderMap) {
    // Usually empty (`Connection: keep-alive` or `close`): no allocation.
    let named: Vec<HeaderName> = connection_tokens(h)
        .filter(|t| names_removable_field(t))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
