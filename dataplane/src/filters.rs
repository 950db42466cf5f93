//! HTTPRoute filters that rewrite requests and responses: header modifiers, redirects, URL
//! rewrites and CORS. Pure functions over `http` types.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use pylon_config::{Cors, HeaderModifier, PathModifier, Redirect, Scheme};

/// Applies set / add / remove (names case-insensitive) to `headers`.
pub fn modify_headers(headers: &mut HeaderMap, m: &HeaderModifier) {
    for h in &m.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.insert(n, v);
        }
    }
    for h in &m.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.append(n, v);
        }
    }
    for name in &m.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(n);
        }
    }
}

/// Rewrites `path` per a path modifier; `prefix` is the matched PathPrefix (no trailing slash).
pub fn rewrite_path(path: &str, modifier: &PathModifier, prefix: Option<&str>) -> String {
    match modifier {
        PathModifier::ReplaceFullPath { value } => value.clone(),
        PathModifier::ReplacePrefixMatch { value } => {
            let prefix = prefix.unwrap_or("");
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let joined = format!("{}{}", value.trim_end_matches('/'), rest);
            if joined.is_empty() {
                "/".to_string()
            } else {
                joined
            }
        }
    }
}

/// The request as a redirect sees it.
pub struct RedirectInput<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub listener_port: u16,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub prefix: Option<&'a str>,
}

/// Status and `Location` for a RequestRedirect, with the spec's default-port rules.
pub fn redirect(r: &Redirect, req: &RedirectInput<'_>) -> (StatusCode, String) {
    let scheme = match r.scheme {
        Some(Scheme::Http) => "http",
        Some(Scheme::Https) => "https",
        None => req.scheme,
    };
    let host = r.hostname.as_deref().unwrap_or(req.host);
    let port = match (r.port, r.scheme) {
        (Some(p), _) => p,
        (None, Some(Scheme::Http)) => 80,
        (None, Some(Scheme::Https)) => 443,
        (None, None) => req.listener_port,
    };
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
    let path = match &r.path {
        Some(m) => rewrite_path(req.path, m, req.prefix),
        None => req.path.to_string(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let mut loc = if default_port {
        format!("{scheme}://{host}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    };
    if let Some(q) = req.query {
        loc.push('?');
        loc.push_str(q);
    }
    (
        StatusCode::from_u16(r.status_code).unwrap_or(StatusCode::FOUND),
        loc,
    )
}

fn origin_allowed(c: &Cors, origin: &str) -> bool {
    c.allow_origins.iter().any(|o| {
        o == "*"
            || o == origin
            || o.split_once("://*").is_some_and(|(scheme, suffix)| {
                origin
                    .strip_prefix(scheme)
                    .and_then(|r| r.strip_prefix("://"))
                    .is_some_and(|host| host.len() > suffix.len() && host.ends_with(suffix))
            })
    })
}

fn join(v: &[String]) -> Option<HeaderValue> {
    (!v.is_empty())
        .then(|| HeaderValue::from_str(&v.join(", ")).ok())
        .flatten()
}

/// Is this a CORS preflight request?
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Headers answering a preflight (empty if the origin is not allowed).
pub fn preflight_headers(c: &Cors, req: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    let Some(origin) = req.get(http::header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return h;
    };
    if !origin_allowed(c, origin) {
        return h;
    }
    add_origin(c, origin, &mut h);
    // A `*` in allowMethods / allowHeaders answers with what was asked for: that is valid with
    // and without credentials (a literal `*` is not, with credentials).
    let methods = if c.allow_methods.iter().any(|m| m == "*") {
        req.get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .cloned()
    } else {
        join(&c.allow_methods)
    };
    if let Some(m) = methods {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    let headers = if c.allow_headers.iter().any(|m| m == "*") {
        req.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
    } else {
        join(&c.allow_headers)
    };
    if let Some(v) = headers {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(v) = join(&c.expose_headers) {
        h.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    h.insert(
        http::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(c.max_age),
    );
    h
}

/// Echoes the (allowed) origin rather than answering `*`: correct with and without
/// credentials, and what browsers and the conformance suite accept in every case.
fn add_origin(c: &Cors, origin: &str, h: &mut HeaderMap) {
    let value = HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("null"));
    h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if c.allow_credentials {
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

/// Adds CORS headers to an actual (non-preflight) response if the origin is allowed.
pub fn cors_response_headers(c: &Cors, req_origin: Option<&str>, resp: &mut HeaderMap) {
    let Some(origin) = req_origin else { return };
    if !origin_allowed(c, origin) {
        return;
    }
    add_origin(c, origin, resp);
    if let Some(v) = join(&c.expose_headers) {
        resp.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(v: &str) -> PathModifier {
        PathModifier::ReplaceFullPath { value: v.into() }
    }
    fn prefix(v: &str) -> PathModifier {
        PathModifier::ReplacePrefixMatch { value: v.into() }
    }

    #[test]
    fn path_rewrites() {
        // (path, modifier, matched prefix, expected)
        let cases = [
            ("/prefix/one/two", prefix("/one"), "/prefix/one", "/one/two"),
            (
                "/strip-prefix/three",
                prefix("/"),
                "/strip-prefix",
                "/three",
            ),
            ("/strip-prefix", prefix("/"), "/strip-prefix", "/"),
            ("/strip-prefix/", prefix("/"), "/strip-prefix", "/"),
            ("/prefix/one", prefix("/xyz/"), "/prefix/one", "/xyz"),
            ("/a/b", prefix("/x"), "", "/x/a/b"),
            ("/full/one/two", full("/one"), "/full", "/one"),
        ];
        for (path, m, p, want) in cases {
            assert_eq!(rewrite_path(path, &m, Some(p)), want, "{path} {m:?}");
        }
    }

    fn redirect_to(r: Redirect, scheme: &str, listener_port: u16) -> String {
        let input = RedirectInput {
            scheme,
            host: "example.com",
            listener_port,
            path: "/a/b",
            query: Some("x=1"),
            prefix: Some("/a"),
        };
        redirect(&r, &input).1
    }

    fn r() -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status_code: 302,
        }
    }

    #[test]
    fn redirect_ports_follow_the_spec() {
        assert_eq!(redirect_to(r(), "http", 80), "http://example.com/a/b?x=1");
        assert_eq!(
            redirect_to(r(), "http", 8080),
            "http://example.com:8080/a/b?x=1"
        );
        assert_eq!(
            redirect_to(
                Redirect {
                    scheme: Some(Scheme::Https),
                    ..r()
                },
                "http",
                8080
            ),
            "https://example.com/a/b?x=1"
        );
        assert_eq!(
            redirect_to(
                Redirect {
                    scheme: Some(Scheme::Http),
                    ..r()
                },
                "https",
                8443
            ),
            "http://example.com/a/b?x=1"
        );
        assert_eq!(
            redirect_to(
                Redirect {
                    port: Some(8443),
                    scheme: Some(Scheme::Https),
                    ..r()
                },
                "http",
                80
            ),
            "https://example.com:8443/a/b?x=1"
        );
        assert_eq!(
            redirect_to(
                Redirect {
                    port: Some(443),
                    ..r()
                },
                "https",
                80
            ),
            "https://example.com/a/b?x=1"
        );
        assert_eq!(
            redirect_to(
                Redirect {
                    hostname: Some("other.org".into()),
                    path: Some(prefix("/z")),
                    ..r()
                },
                "http",
                80
            ),
            "http://other.org/z/b?x=1"
        );
    }

    #[test]
    fn header_modifier() {
        let mut h = HeaderMap::new();
        h.insert("x-keep", HeaderValue::from_static("1"));
        h.insert("x-set", HeaderValue::from_static("old"));
        h.insert("x-add", HeaderValue::from_static("a"));
        h.insert("x-remove", HeaderValue::from_static("gone"));
        let hv = |n: &str, v: &str| pylon_config::HeaderValue {
            name: n.into(),
            value: v.into(),
        };
        let m = HeaderModifier {
            set: vec![hv("X-Set", "new")],
            add: vec![hv("x-add", "b")],
            remove: vec!["X-Remove".into()],
        };
        modify_headers(&mut h, &m);
        assert_eq!(h["x-set"], "new");
        assert_eq!(h.get_all("x-add").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!h.contains_key("x-remove"));
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn cors_origins() {
        let c = Cors {
            allow_origins: vec!["https://a.example".into(), "https://*.wild.example".into()],
            allow_methods: vec!["GET".into(), "PUT".into()],
            ..Default::default()
        };
        assert!(origin_allowed(&c, "https://a.example"));
        assert!(origin_allowed(&c, "https://x.wild.example"));
        assert!(!origin_allowed(&c, "http://x.wild.example"));
        assert!(!origin_allowed(&c, "https://b.example"));
        let mut req = HeaderMap::new();
        req.insert("origin", HeaderValue::from_static("https://a.example"));
        req.insert(
            "access-control-request-method",
            HeaderValue::from_static("PUT"),
        );
        let h = preflight_headers(&c, &req);
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET, PUT");
        assert_eq!(h["access-control-max-age"], "0");
        assert!(!h.contains_key("access-control-allow-credentials"));

        // Wildcards answer with what was requested, and the origin is always echoed.
        let wild = Cors {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            expose_headers: vec!["x-e".into()],
            allow_credentials: true,
            max_age: 5,
        };
        req.insert("origin", HeaderValue::from_static("https://x.org:8443"));
        req.insert(
            "access-control-request-headers",
            HeaderValue::from_static("x-1, x-2"),
        );
        let h = preflight_headers(&wild, &req);
        assert_eq!(h["access-control-allow-origin"], "https://x.org:8443");
        assert_eq!(h["access-control-allow-methods"], "PUT");
        assert_eq!(h["access-control-allow-headers"], "x-1, x-2");
        assert_eq!(h["access-control-expose-headers"], "x-e");
        assert_eq!(h["access-control-allow-credentials"], "true");
    }
}
