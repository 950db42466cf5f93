//! The request's target, decided once per request, before routing, by both HTTP/1.1 engines
//! and HTTP/2 alike: the authority that routing matches and that is forwarded as Host, the path
//! with its dot-segments removed, and the requests refused before any route sees them.
//!
//! Why one place: a proxy that routes by one host and forwards another, or matches one path
//! and forwards a path the backend reads differently, lets a client past a route's rules
//! (a header match on another route, a `PathPrefix` that `/public/../admin` satisfies).
//! api-docs/request-normalization.md lists every rule here with the status it answers.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Uri, Version};

use crate::errors::{Malformed, ProxyError};
use crate::fields;
use crate::matching::normalize_host;

/// What a request is routed by and forwarded with.
#[derive(Debug)]
pub struct Decided {
    /// The authority as received (validated): what is forwarded as Host unless a filter
    /// rewrites it.
    pub authority: HeaderValue,
    /// The path and query to route and forward, when normalisation changed them.
    pub path_and_query: Option<PathAndQuery>,
}

impl Decided {
    /// The host routing matches: lowercase, without port or trailing dot.
    pub fn host(&self) -> Cow<'_, str> {
        // Validated: visible ASCII only.
        normalize_host(self.authority.to_str().unwrap_or_default())
    }

    /// `uri` with the normalised path, if normalisation changed it (scheme and authority
    /// kept).
    pub fn apply(&mut self, uri: &mut Uri) {
        let Some(pq) = self.path_and_query.take() else {
            return;
        };
        let mut parts = std::mem::take(uri).into_parts();
        parts.path_and_query = Some(pq);
        // A URI with a scheme and authority and a path stays valid with another path.
        *uri = Uri::from_parts(parts).unwrap_or_default();
    }
}

/// Decides a request's target, or refuses the request.
pub fn decide(
    method: &Method,
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Decided, ProxyError> {
    // CONNECT would turn the gateway into an open tunnel, TRACE reflects credentials
    // (cross-site tracing): neither is proxied.
    if method == Method::CONNECT || method == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    let authority = authority(version, uri, headers)?;
    if !valid_authority(authority.as_bytes()) {
        return Err(ProxyError::BadRequest(Malformed::Host));
    }
    if version <= Version::HTTP_11 {
        // A coding the body would reach the backend without (only chunked is understood
        // here): RFC 9112 §6.1 names 501. Chunked twice is a faulty message (§7).
        let c = fields::transfer_codings(headers);
        if c.chunked > 1 {
            return Err(ProxyError::BadRequest(Malformed::Framing));
        }
        if c.other {
            return Err(ProxyError::NotImplemented);
        }
    }
    let path_and_query = match uri.path_and_query().map(PathAndQuery::as_str) {
        // The asterisk form is for OPTIONS only (RFC 9112 §3.2.4).
        Some("*") if method == Method::OPTIONS => None,
        Some("*") => return Err(ProxyError::BadRequest(Malformed::Target)),
        _ => normalized(uri)?,
    };
    Ok(Decided {
        authority,
        path_and_query,
    })
}

/// The authority a request names: the request-target's own (absolute form, HTTP/2's
/// `:authority`) wins over the Host field (RFC 9112 §3.2.2, RFC 9113 §8.3.1), which is then
/// ignored and replaced on the way out; an HTTP/1.1 request has exactly one Host (§3.2).
fn authority(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<HeaderValue, ProxyError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (host, more) = (hosts.next(), hosts.next().is_some());
    if more || (version == Version::HTTP_11 && host.is_none()) {
        return Err(ProxyError::BadRequest(Malformed::HostCount));
    }
    let Some(target) = uri.authority() else {
        return Ok(host
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("")));
    };
    HeaderValue::from_str(target.as_str()).map_err(|_| ProxyError::BadRequest(Malformed::Host))
}

/// Is `a` a valid Host / `:authority` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal or a
/// reg-name, and an optional numeric port? No userinfo (§4.2.4). Stricter than RFC 3986 on one
/// point: a reg-name may not be percent-encoded, since no DNS name is and routing compares
/// names as received.
fn valid_authority(a: &[u8]) -> bool {
    let (host, port) = match a.strip_prefix(b"[") {
        Some(rest) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = std::str::from_utf8(&rest[..end]).ok();
            if literal.and_then(|s| s.parse::<Ipv6Addr>().ok()).is_none() {
                return false;
            }
            match &rest[end + 1..] {
                [] => return true,
                [b':', port @ ..] => (&[][..], Some(port)),
                _ => return false,
            }
        }
        None => match a.iter().position(|&b| b == b':') {
            Some(i) => (&a[..i], Some(&a[i + 1..])),
            None => (a, None),
        },
    };
    // unreserved and sub-delims (RFC 3986 §2.2, §2.3).
    let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(b);
    host.iter().all(reg_name)
        && port.is_none_or(|p| {
            p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && (p.is_empty() || std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok()))
        })
}

/// `uri`'s path and query with the path normalised, or `None` if it is normal already.
fn normalized(uri: &Uri) -> Result<Option<PathAndQuery>, ProxyError> {
    let bad = ProxyError::BadRequest(Malformed::Path);
    let Some(path) = normalize_path(uri.path()).map_err(|()| bad)? else {
        return Ok(None);
    };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    PathAndQuery::try_from(pq).map(Some).map_err(|_| bad)
}

/// Normalises an origin-form path, or says it is already normal (`None`), the usual case,
/// found by one scan without allocating. In order:
/// - percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2: `%2e` is `.`,
///   `%41` is `A`), other percent-encodings get upper-case hex digits (§6.2.2.1) and stay
///   encoded: `%2F` is not a separator, and is forwarded as `%2F`; a `%` not followed by two
///   hex digits is an error;
/// - a backslash is a slash (as backends on Windows and many URL parsers read it);
/// - empty segments are merged (`//` is `/`, as nginx's `merge_slashes`);
/// - `.` and `..` segments are removed (RFC 3986 §5.2.4); `..` never climbs above the root.
pub(crate) fn normalize_path(path: &str) -> Result<Option<String>, ()> {
    // The asterisk and authority forms are the caller's to decide.
    if !path.starts_with('/') {
        return Ok(None);
    }
    let b = path.as_bytes();
    let needs = b.iter().enumerate().any(|(i, &c)| {
        c == b'%' || c == b'\\' || (c == b'/' && matches!(b.get(i + 1), Some(b'/' | b'.')))
    });
    if !needs {
        return Ok(None);
    }
    let decoded = decode_unreserved(b)?;
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = decoded.split(|&c| c == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    // A path ending in `/`, `/.` or `/..` keeps its trailing slash.
    let mut trailing = false;
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            b"" | b"." => trailing = i == last,
            b".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut result = Vec::with_capacity(decoded.len());
    for seg in &out {
        result.push(b'/');
        result.extend_from_slice(seg);
    }
    if trailing || out.is_empty() {
        result.push(b'/');
    }
    // Only ASCII goes in and comes out.
    let result = String::from_utf8(result).map_err(|_| ())?;
    Ok((result != path).then_some(result))
}

/// `path` with percent-encoded unreserved characters decoded, the other encodings' hex digits
/// in upper case and backslashes turned into slashes.
fn decode_unreserved(path: &[u8]) -> Result<Vec<u8>, ()> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    path.get(i + 1).copied().and_then(hex),
                    path.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(());
                };
                let c = hi << 4 | lo;
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    out.push(c);
                } else {
                    out.push(b'%');
                    out.push(path[i + 1].to_ascii_uppercase());
                    out.push(path[i + 2].to_ascii_uppercase());
                }
                i += 3;
            }
            b'\\' => {
                out.push(b'/');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_before_routing() {
        let cases: [(&str, Result<Option<&str>, ()>); 20] = [
            ("/", Ok(None)),
            ("/a/b.c/d", Ok(None)),
            ("/a/.well-known", Ok(None)),
            ("/public/../admin", Ok(Some("/admin"))),
            ("/public/%2e%2E/admin", Ok(Some("/admin"))),
            ("/public/.%2e/admin", Ok(Some("/admin"))),
            ("/a/./b/", Ok(Some("/a/b/"))),
            ("/a/b/.", Ok(Some("/a/b/"))),
            ("/a/b/..", Ok(Some("/a/"))),
            ("/..", Ok(Some("/"))),
            ("/../../x", Ok(Some("/x"))),
            ("//admin", Ok(Some("/admin"))),
            ("/a//b///c", Ok(Some("/a/b/c"))),
            ("/a\\..\\admin", Ok(Some("/admin"))),
            ("/%41%7e", Ok(Some("/A~"))),
            ("/a%2fb", Ok(Some("/a%2Fb"))),
            ("/a%2F..%2Fb", Ok(None)),
            ("/%zz", Err(())),
            ("/a%2", Err(())),
            ("/a%", Err(())),
        ];
        for (path, want) in cases {
            let want = want.map(|p| p.map(str::to_string));
            assert_eq!(normalize_path(path), want, "{path}");
        }
    }

    #[test]
    fn authorities_are_a_name_or_an_ip_literal_and_a_numeric_port() {
        for ok in [
            "a.example.com",
            "a.example.com:8080",
            "a.example.com:",
            "A-b_c~d.example",
            "10.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "",
        ] {
            assert!(valid_authority(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "u@a",
            "a.example.com:1@secret.example.com",
            "a.example.com:abc",
            "a.example.com:65536",
            "a.example.com:123456",
            "a:1:2",
            "[::1",
            "[::1]x",
            "[zz::1]",
            "[fe80::1%25eth0]",
            "a/b",
            "a%2eb",
            "a b",
            "a\\b",
        ] {
            assert!(!valid_authority(bad.as_bytes()), "{bad}");
        }
    }

    fn decided(
        method: &str,
        version: Version,
        uri: &str,
        host: &[&str],
    ) -> Result<Decided, ProxyError> {
        let mut h = HeaderMap::new();
        for v in host {
            h.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        decide(&method, version, &uri.parse().unwrap(), &h)
    }

    #[test]
    fn the_target_authority_wins_and_is_what_is_forwarded() {
        let d = decided(
            "GET",
            Version::HTTP_11,
            "http://a.example.com/x",
            &["secret.example.com"],
        )
        .unwrap();
        assert_eq!(d.authority, "a.example.com");
        assert_eq!(d.host(), "a.example.com");
        let d = decided("GET", Version::HTTP_11, "/x", &["A.Example.com:80"]).unwrap();
        assert_eq!(d.authority, "A.Example.com:80");
        assert_eq!(d.host(), "a.example.com");
        // HTTP/2: `:authority` wins over `host`.
        let d = decided(
            "GET",
            Version::HTTP_2,
            "https://a.example.com/x",
            &["secret.example.com"],
        )
        .unwrap();
        assert_eq!(d.authority, "a.example.com");
        let d = decided("GET", Version::HTTP_2, "/x", &["b.example.com"]).unwrap();
        assert_eq!(d.authority, "b.example.com");
    }

    #[test]
    fn requests_refused_before_routing() {
        let cases: [(&str, Version, &str, &[&str], ProxyError); 9] = [
            (
                "GET",
                Version::HTTP_11,
                "/",
                &[],
                ProxyError::BadRequest(Malformed::HostCount),
            ),
            (
                "GET",
                Version::HTTP_11,
                "/",
                &["a", "a"],
                ProxyError::BadRequest(Malformed::HostCount),
            ),
            (
                "GET",
                Version::HTTP_11,
                "/",
                &["u@a"],
                ProxyError::BadRequest(Malformed::Host),
            ),
            (
                "GET",
                Version::HTTP_11,
                "http://u@a/",
                &["a"],
                ProxyError::BadRequest(Malformed::Host),
            ),
            (
                "GET",
                Version::HTTP_11,
                "/",
                &["a:abc"],
                ProxyError::BadRequest(Malformed::Host),
            ),
            (
                "GET",
                Version::HTTP_11,
                "*",
                &["a"],
                ProxyError::BadRequest(Malformed::Target),
            ),
            (
                "GET",
                Version::HTTP_11,
                "/%zz",
                &["a"],
                ProxyError::BadRequest(Malformed::Path),
            ),
            (
                "CONNECT",
                Version::HTTP_11,
                "a:443",
                &["a:443"],
                ProxyError::MethodNotAllowed,
            ),
            (
                "TRACE",
                Version::HTTP_11,
                "/",
                &["a"],
                ProxyError::MethodNotAllowed,
            ),
        ];
        for (method, version, uri, host, want) in cases {
            assert_eq!(
                decided(method, version, uri, host).err(),
                Some(want),
                "{method} {uri} {host:?}"
            );
        }
        assert!(decided("OPTIONS", Version::HTTP_11, "*", &["a"]).is_ok());
        assert!(
            decided("GET", Version::HTTP_10, "/", &[]).is_ok(),
            "HTTP/1.0 needs no Host"
        );
    }

    #[test]
    fn request_codings_other_than_chunked_are_not_implemented() {
        let with_te = |te: &[&'static str]| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("a"));
            for v in te {
                h.append(header::TRANSFER_ENCODING, HeaderValue::from_static(v));
            }
            decide(&Method::POST, Version::HTTP_11, &"/".parse().unwrap(), &h).err()
        };
        assert_eq!(with_te(&["chunked"]), None);
        assert_eq!(
            with_te(&["gzip, chunked"]),
            Some(ProxyError::NotImplemented)
        );
        assert_eq!(
            with_te(&["chunked", "chunked"]),
            Some(ProxyError::BadRequest(Malformed::Framing))
        );
    }

    #[test]
    fn a_normalised_path_replaces_the_uris_and_keeps_the_query() {
        let mut uri: Uri = "http://a.example.com/p/../q?x=/../y".parse().unwrap();
        let mut d = decided(
            "GET",
            Version::HTTP_11,
            "http://a.example.com/p/../q?x=/../y",
            &["a"],
        )
        .unwrap();
        d.apply(&mut uri);
        assert_eq!(uri, "http://a.example.com/q?x=/../y");
    }
}
