//! Loopback integration tests for the CORS filter, one per case of the upstream conformance
//! tests `HTTPRouteCORS` and `HTTPRouteCORSAllowCredentialsBehavior` (Gateway API v1.5.1), with
//! the same routes as their manifests and the same requests and header checks.

mod common;

use common::*;

/// The routes of `tests/httproute-cors.yaml`, translated to the data plane's config.
const CONFORMANCE_ROUTES: &str = "
  - kind: HTTPRoute
    namespace: gateway-conformance-infra
    name: cors-multiple-origins-methods-headers
    creationTimestamp: '2024-01-01T00:00:00Z'
    rules:
    - matches: [{path: {type: PathPrefix, value: /cors-1}}]
      filters: [{type: CORS, allowOrigins: ['https://www.foo.com', 'https://*.bar.com'], allowMethods: [GET, OPTIONS], allowHeaders: [x-header-1, x-header-2], exposeHeaders: [x-header-3, x-header-4], allowCredentials: true, maxAge: 3600}]
      backendRefs: [{type: Backend, name: v1}]
  - kind: HTTPRoute
    namespace: gateway-conformance-infra
    name: cors-wildcard-methods
    creationTimestamp: '2024-01-01T00:00:01Z'
    rules:
    - matches: [{path: {type: PathPrefix, value: /cors-2}}]
      filters: [{type: CORS, allowOrigins: ['https://www.foo.com'], allowMethods: ['*']}]
      backendRefs: [{type: Backend, name: v1}]
  - kind: HTTPRoute
    namespace: gateway-conformance-infra
    name: cors-wildcard-origin
    creationTimestamp: '2024-01-01T00:00:02Z'
    rules:
    - matches: [{path: {type: PathPrefix, value: /cors-wildcard-origin}}]
      filters: [{type: CORS, allowOrigins: ['*'], allowMethods: [PUT], allowCredentials: false}]
      backendRefs: [{type: Backend, name: v1}]
  - kind: HTTPRoute
    namespace: gateway-conformance-infra
    name: cors-wildcard-methods-headers
    creationTimestamp: '2024-01-01T00:00:03Z'
    rules:
    - matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers}}]
      filters: [{type: CORS, allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true}]
      backendRefs: [{type: Backend, name: v1}]
    - matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers-unauth}}]
      filters: [{type: CORS, allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: false}]
      backendRefs: [{type: Backend, name: v1}]
";

/// [`CONFORMANCE_ROUTES`] on `port`, to the backend at `backend`.
fn conformance_config(port: u16, backend: &str) -> String {
    http_listener(
        port,
        CONFORMANCE_ROUTES,
        &format!("{{v1: {{endpoints: [{{address: '{backend}'}}]}}}}"),
    )
}

/// A header's values joined by "," with spaces removed (the suite's `IgnoreWhitespace`).
fn value(got: &Got, name: &str) -> Option<String> {
    let v: Vec<&str> = got
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    (!v.is_empty()).then(|| v.join(",").replace(' ', ""))
}

/// Asserts `name` is one of `valid` (compared like the suite: joined, whitespace ignored).
#[track_caller]
fn one_of(got: &Got, name: &str, valid: &[&str]) {
    let actual = value(got, name);
    let valid: Vec<String> = valid.iter().map(|v| v.replace(' ', "")).collect();
    assert!(
        actual.as_ref().is_some_and(|a| valid.contains(a)),
        "{name}: got {actual:?}, want one of {valid:?}; all headers: {:?}",
        got.headers
    );
}

#[track_caller]
fn absent(got: &Got, name: &str) {
    assert!(
        !got.headers.contains_key(name),
        "{name} must be absent: {:?}",
        got.headers
    );
}

/// A preflight must be answered with 200/204 and a body the suite does not parse as the echo
/// server's JSON (otherwise it compares the captured request and fails).
#[track_caller]
fn answered_by_proxy(got: &Got) {
    assert!(
        got.status == 200 || got.status == 204,
        "status {}",
        got.status
    );
    assert_ne!(
        value(got, "content-type").as_deref(),
        Some("application/json"),
        "preflight reached the backend: {}",
        got.body
    );
}

#[tokio::test]
async fn conformance_httproute_cors() {
    let v1 = Backend::start("v1").await;
    let port = free_port();
    let _p = Proxy::start(&conformance_config(port, &v1.addr.to_string())).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = http1();
    let opts = |path: &str, headers: &'static [(&'static str, &'static str)]| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move { send(&client, "OPTIONS", &url, headers).await }
    };

    // Preflights from an exact, a wildcard and a multi-label wildcard origin on /cors-1.
    for origin in [
        "https://www.foo.com",
        "https://www.bar.com",
        "https://xpto.www.bar.com",
    ] {
        let got = send(
            &client,
            "OPTIONS",
            &format!("{base}/cors-1"),
            &[
                ("Origin", origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-header-1, x-header-2"),
            ],
        )
        .await;
        answered_by_proxy(&got);
        one_of(&got, "access-control-allow-origin", &[origin]);
        one_of(
            &got,
            "access-control-allow-methods",
            &["GET, OPTIONS", "OPTIONS, GET"],
        );
        one_of(
            &got,
            "access-control-allow-headers",
            &["x-header-1, x-header-2", "x-header-2, x-header-1"],
        );
        one_of(
            &got,
            "access-control-expose-headers",
            &["x-header-3, x-header-4", "x-header-4, x-header-3"],
        );
        one_of(&got, "access-control-max-age", &["3600"]);
        one_of(&got, "access-control-allow-credentials", &["true"]);
    }

    // A preflight from an origin not allowed gets no CORS headers.
    let got = opts(
        "/cors-1",
        &[
            ("Origin", "https://foobar.com"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert!([200, 204, 403].contains(&got.status.as_u16()));
    absent(&got, "access-control-allow-origin");

    // Simple requests reach the backend and carry the echoed origin when allowed.
    for (origin, allowed) in [
        ("https://www.foo.com", true),
        ("https://www.bar.com", true),
        ("https://foobar.com", false),
    ] {
        let got = get(
            &format!("{base}/cors-1"),
            &[("Origin", origin), ("access-control-request-method", "GET")],
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.backend(), "v1");
        if allowed {
            one_of(&got, "access-control-allow-origin", &[origin]);
        } else {
            absent(&got, "access-control-allow-origin");
        }
    }

    // allowMethods '*' answers the requested method (or '*'), without credentials.
    let got = opts(
        "/cors-2",
        &[
            ("Origin", "https://www.foo.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    answered_by_proxy(&got);
    one_of(&got, "access-control-allow-methods", &["POST", "*"]);
    one_of(
        &got,
        "access-control-allow-origin",
        &["https://www.foo.com"],
    );
    absent(&got, "access-control-allow-credentials");

    // allowOrigins '*' answers the origin (or '*'), with and without a port.
    for origin in ["https://foobar.com", "https://foobar.com:12345"] {
        let got = send(
            &client,
            "OPTIONS",
            &format!("{base}/cors-wildcard-origin"),
            &[("Origin", origin), ("access-control-request-method", "PUT")],
        )
        .await;
        answered_by_proxy(&got);
        one_of(&got, "access-control-allow-origin", &[origin, "*"]);
        one_of(&got, "access-control-allow-methods", &["PUT"]);
        absent(&got, "access-control-allow-credentials");
    }

    // Wildcards with credentials must echo what was asked for; without, '*' is also fine.
    let got = opts(
        "/cors-wildcard-methods-headers",
        &[
            ("Origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
    )
    .await;
    answered_by_proxy(&got);
    one_of(
        &got,
        "access-control-allow-origin",
        &["https://other.foo.com"],
    );
    one_of(&got, "access-control-allow-methods", &["PUT"]);
    one_of(
        &got,
        "access-control-allow-headers",
        &["x-header-1, x-header-2", "x-header-2, x-header-1"],
    );
    one_of(&got, "access-control-allow-credentials", &["true"]);
    let got = opts(
        "/cors-wildcard-methods-headers-unauth",
        &[
            ("Origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
    )
    .await;
    answered_by_proxy(&got);
    one_of(
        &got,
        "access-control-allow-origin",
        &["https://other.foo.com", "*"],
    );
    one_of(&got, "access-control-allow-methods", &["PUT", "*"]);
    one_of(
        &got,
        "access-control-allow-headers",
        &["x-header-1, x-header-2", "x-header-2, x-header-1", "*"],
    );
    absent(&got, "access-control-allow-credentials");

    // Actual requests with a cookie: credentials only on the route that allows them.
    let cookie = [("Origin", "https://other.foo.com"), ("Cookie", "foo=bar")];
    let got = get(&format!("{base}/cors-wildcard-methods-headers"), &cookie).await;
    assert_eq!(got.status, 200);
    one_of(
        &got,
        "access-control-allow-origin",
        &["https://other.foo.com"],
    );
    one_of(&got, "access-control-allow-credentials", &["true"]);
    let got = get(
        &format!("{base}/cors-wildcard-methods-headers-unauth"),
        &cookie,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.backend(), "v1");
    one_of(
        &got,
        "access-control-allow-origin",
        &["https://other.foo.com"],
    );
    absent(&got, "access-control-allow-credentials");
}
