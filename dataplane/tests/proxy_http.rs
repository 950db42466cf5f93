//! Loopback integration tests: routing, filters and backend behaviour against real backends.

mod common;

use std::time::Duration;

use common::*;

fn cfg(port: u16, rules: &str, backends: &str) -> String {
    let routes = format!(
        "
  - kind: HTTPRoute
    namespace: default
    name: r
    creationTimestamp: '2024-01-01T00:00:00Z'
    rules: {rules}"
    );
    http_listener(port, &routes, backends)
}

#[tokio::test]
async fn routes_and_modifies_headers_over_http1_and_h2c() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let rules = "
    - matches: [{path: {type: PathPrefix, value: /a}}]
      filters:
      - {type: RequestHeaderModifier, set: [{name: x-set, value: s}], add: [{name: x-add, value: two}], remove: [x-remove]}
      - {type: ResponseHeaderModifier, set: [{name: x-resp, value: r}], remove: [x-backend]}
      backendRefs: [{type: Backend, name: a, filters: [{type: RequestHeaderModifier, set: [{name: x-per-backend, value: a}]}]}]
    - matches: [{path: {type: PathPrefix, value: /b}}]
      backendRefs: [{type: Backend, name: b}]";
    let backends = format!(
        "{{a: {{endpoints: [{{address: '{}'}}]}}, b: {{endpoints: [{{address: '{}'}}]}}}}",
        a.addr, b.addr
    );
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let url = format!("http://127.0.0.1:{port}/a/x?q=1");
    let got = get(
        &url,
        &[
            ("x-add", "one"),
            ("x-remove", "gone"),
            ("x-set", "old"),
            ("host", "example.com"),
            ("connection", "x-hop"),
            ("x-hop", "dropped"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let j = got.json();
    assert_eq!(j["backend"], "a");
    assert_eq!(j["path"], "/a/x?q=1");
    assert_eq!(j["host"], "example.com");
    assert_eq!(j["headers"]["x-set"], "s");
    assert_eq!(j["headers"]["x-per-backend"], "a");
    assert_eq!(j["headers"]["x-add"], "one,two");
    assert!(j["headers"].get("x-remove").is_none());
    assert!(
        j["headers"].get("x-hop").is_none(),
        "headers named by Connection are hop-by-hop"
    );
    assert_eq!(j["headers"]["x-forwarded-proto"], "http");
    assert_eq!(got.headers["x-resp"], "r");
    assert!(!got.headers.contains_key("x-backend"));

    let got = send(&h2c(), "GET", &format!("http://127.0.0.1:{port}/b"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.backend(), "b");
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/nothing"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn weights_invalid_backends_and_missing_endpoints() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let rules = "
    - matches: [{path: {type: Exact, value: /weighted}}]
      backendRefs: [{type: Backend, name: a, weight: 3}, {type: Backend, name: b, weight: 1}, {type: Backend, name: a, weight: 0}]
    - matches: [{path: {type: Exact, value: /zero}}]
      backendRefs: [{type: Backend, name: a, weight: 0}, {type: Backend, name: b, weight: 1}]
    - matches: [{path: {type: Exact, value: /invalid}}]
      backendRefs: [{type: Invalid, reason: BackendNotFound}]
    - matches: [{path: {type: Exact, value: /none}}]
      backendRefs: []
    - matches: [{path: {type: Exact, value: /empty}}]
      backendRefs: [{type: Backend, name: empty}]
    - matches: [{path: {type: Exact, value: /unready}}]
      backendRefs: [{type: Backend, name: unready}]";
    let backends = format!(
        "{{a: {{endpoints: [{{address: '{}'}}]}}, b: {{endpoints: [{{address: '{}'}}]}}, empty: {{}}, unready: {{endpoints: [{{address: '{}', ready: false}}]}}}}",
        a.addr, b.addr, a.addr
    );
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = http1();
    let mut count_a = 0;
    for _ in 0..400 {
        if send(&client, "GET", &format!("{base}/weighted"), &[])
            .await
            .backend()
            == "a"
        {
            count_a += 1;
        }
    }
    assert!(
        (240..=360).contains(&count_a),
        "3:1 split gave {count_a}/400 to a"
    );
    for _ in 0..20 {
        assert_eq!(
            send(&client, "GET", &format!("{base}/zero"), &[])
                .await
                .backend(),
            "b"
        );
    }
    assert_eq!(get(&format!("{base}/invalid"), &[]).await.status, 500);
    assert_eq!(get(&format!("{base}/none"), &[]).await.status, 500);
    assert_eq!(get(&format!("{base}/empty"), &[]).await.status, 503);
    assert_eq!(get(&format!("{base}/unready"), &[]).await.status, 503);
}

#[tokio::test]
async fn redirects_and_rewrites() {
    let a = Backend::start("a").await;
    let port = free_port();
    let rules = "
    - matches: [{path: {type: PathPrefix, value: /redirect}}]
      filters: [{type: RequestRedirect, scheme: https, hostname: new.example.com, path: {type: ReplacePrefixMatch, value: /moved}, statusCode: 301}]
    - matches: [{path: {type: PathPrefix, value: /port}}]
      filters: [{type: RequestRedirect, port: 8443}]
    - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
      filters: [{type: URLRewrite, hostname: rewritten.example, path: {type: ReplacePrefixMatch, value: /one}}]
      backendRefs: [{type: Backend, name: a}]
    - matches: [{path: {type: PathPrefix, value: /full}}]
      filters: [{type: URLRewrite, path: {type: ReplaceFullPath, value: /replaced}}]
      backendRefs: [{type: Backend, name: a}]";
    let backends = format!("{{a: {{endpoints: [{{address: '{}'}}]}}}}", a.addr);
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let base = format!("http://127.0.0.1:{port}");
    let got = get(
        &format!("{base}/redirect/x?y=1"),
        &[("host", "example.com")],
    )
    .await;
    assert_eq!(got.status, 301);
    assert_eq!(
        got.headers["location"],
        "https://new.example.com/moved/x?y=1"
    );
    let got = get(&format!("{base}/port"), &[("host", "example.com")]).await;
    assert_eq!(got.status, 302);
    assert_eq!(got.headers["location"], "http://example.com:8443/port");
    let j = get(&format!("{base}/prefix/one/two?k=v"), &[]).await.json();
    assert_eq!(j["path"], "/one/two?k=v");
    assert_eq!(j["host"], "rewritten.example");
    assert_eq!(
        get(&format!("{base}/full/a/b"), &[]).await.json()["path"],
        "/replaced"
    );
}

#[tokio::test]
async fn mirrors_timeouts_and_retries() {
    let (a, m1, m2) = (
        Backend::start("a").await,
        Backend::start("m1").await,
        Backend::start("m2").await,
    );
    let port = free_port();
    let rules = "
    - matches: [{path: {type: PathPrefix, value: /mirror}}]
      filters: [{type: RequestMirror, backend: m1}, {type: RequestMirror, backend: m2, percent: 0}]
      backendRefs: [{type: Backend, name: a}]
    - matches: [{path: {type: Exact, value: /slow}}]
      timeouts: {request: 500ms}
      backendRefs: [{type: Backend, name: a}]
    - matches: [{path: {type: Exact, value: /flaky}}]
      retry: {codes: [503], attempts: 2, backoff: 10ms}
      backendRefs: [{type: Backend, name: a}]
    - matches: [{path: {type: PathPrefix, value: /dead}}]
      retry: {attempts: 3, backoff: 1ms}
      backendRefs: [{type: Backend, name: dead}]
    - matches: [{path: {type: PathPrefix, value: /closing}}]
      retry: {attempts: 3, backoff: 1ms}
      backendRefs: [{type: Backend, name: closing}]";
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A backend that accepts and closes every connection without answering, counting them:
    // each attempt is one connection, so the count is the number of attempts.
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_addr = closing.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = closing.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let backends = format!(
        "{{a: {{endpoints: [{{address: '{}'}}]}}, m1: {{endpoints: [{{address: '{}'}}]}}, m2: {{endpoints: [{{address: '{}'}}]}}, dead: {{endpoints: [{{address: '{dead}'}}]}}, closing: {{endpoints: [{{address: '{closing_addr}'}}]}}}}",
        a.addr, m1.addr, m2.addr
    );
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..5 {
        assert_eq!(get(&format!("{base}/mirror"), &[]).await.backend(), "a");
    }
    for _ in 0..100 {
        if m1.hits() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m1.hits(), 5, "every request mirrored to m1");
    assert_eq!(m2.hits(), 0, "percent 0 never mirrors");

    let t = std::time::Instant::now();
    assert_eq!(get(&format!("{base}/slow"), &[]).await.status, 504);
    assert!(t.elapsed() < Duration::from_millis(1400));

    // /flaky answers 503 then 200: the retry hides the failure.
    for _ in 0..4 {
        assert_eq!(get(&format!("{base}/flaky"), &[]).await.status, 200);
    }
    // Connection refused on every attempt → 503.
    assert_eq!(get(&format!("{base}/dead"), &[]).await.status, 503);
    // A backend that drops every connection: the first attempt and the 3 retries each reach
    // it, then the answer is 502.
    assert_eq!(get(&format!("{base}/closing"), &[]).await.status, 502);
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one attempt and 3 retries"
    );
}

#[tokio::test]
async fn cors_preflight_and_response() {
    let a = Backend::start("a").await;
    let port = free_port();
    let rules = "
    - filters: [{type: CORS, allowOrigins: ['https://*.example.com'], allowMethods: [GET, POST], allowHeaders: [x-h], exposeHeaders: [x-e], allowCredentials: true, maxAge: 60}]
      backendRefs: [{type: Backend, name: a}]";
    let backends = format!("{{a: {{endpoints: [{{address: '{}'}}]}}}}", a.addr);
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let url = format!("http://127.0.0.1:{port}/x");
    let pre = send(
        &http1(),
        "OPTIONS",
        &url,
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(pre.headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(pre.headers["access-control-allow-credentials"], "true");
    assert_eq!(pre.headers["access-control-max-age"], "60");
    assert_eq!(a.hits(), 0, "preflight answered by the proxy");
    let got = get(&url, &[("origin", "https://app.example.com")]).await;
    assert_eq!(got.headers["access-control-expose-headers"], "x-e");
    let denied = get(&url, &[("origin", "https://evil.org")]).await;
    assert!(!denied.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("a").await;
    let port = free_port();
    let rules = "[{filters: [{type: ResponseHeaderModifier, set: [{name: x-upgraded, value: 'yes'}]}], backendRefs: [{type: Backend, name: a}]}]";
    let backends = format!(
        "{{a: {{protocol: ws, endpoints: [{{address: '{}'}}]}}}}",
        a.addr
    );
    let _p = Proxy::start(&cfg(port, rules, &backends)).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nx-upgraded: yes\r\n"),
        "response filters apply to the upgrade's answer too: {head}"
    );
    s.write_all(b"ping-through-tunnel").await.unwrap();
    let mut echoed = vec![0u8; 19];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping-through-tunnel");
}

#[tokio::test]
async fn grpc_requests_get_grpc_errors_and_reach_h2c_backends() {
    let g = Backend::start("grpc").await;
    let port = free_port();
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: http
  port: {port}
  protocol: HTTP
  routes:
  - kind: GRPCRoute
    namespace: default
    name: g
    creationTimestamp: '2024-01-01T00:00:00Z'
    rules:
    - matches: [{{grpc: {{service: echo.Echo}}}}]
      backendRefs: [{{type: Backend, name: g}}]
    - matches: [{{grpc: {{service: down.Down}}}}]
      backendRefs: [{{type: Backend, name: empty}}]
backends:
  g: {{protocol: h2c, endpoints: [{{address: '{}'}}]}}
  empty: {{protocol: h2c}}
",
        g.addr
    );
    let _p = Proxy::start(&yaml).await;
    let c = h2c();
    let grpc = [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("host", "grpc.example.com"),
    ];
    let ok = send(
        &c,
        "POST",
        &format!("http://127.0.0.1:{port}/echo.Echo/Say"),
        &grpc,
    )
    .await;
    assert_eq!(ok.status, 200);
    let j = ok.json();
    assert_eq!(j["version"], "HTTP/2.0", "h2c upstream");
    assert_eq!(j["path"], "/echo.Echo/Say");
    // `:authority` (the URI's) wins over a `host` field beside it, and is what is forwarded.
    assert_eq!(j["host"], format!("127.0.0.1:{port}"));
    let missing = send(
        &c,
        "POST",
        &format!("http://127.0.0.1:{port}/other.Svc/M"),
        &grpc,
    )
    .await;
    assert_eq!(missing.status, 200);
    assert_eq!(missing.headers["grpc-status"], "12");
    let down = send(
        &c,
        "POST",
        &format!("http://127.0.0.1:{port}/down.Down/M"),
        &grpc,
    )
    .await;
    assert_eq!(down.headers["grpc-status"], "14");
}

#[tokio::test]
async fn listeners_on_one_port_are_isolated_by_hostname() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let port = free_port();
    let route = |backend: &str| {
        format!(
            "[{{kind: HTTPRoute, namespace: d, name: r-{backend}, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{backendRefs: [{{type: Backend, name: {backend}}}]}}]}}]"
        )
    };
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- {{name: empty-hostname, port: {port}, protocol: HTTP, routes: {}}}
- {{name: wildcard, port: {port}, protocol: HTTP, hostname: '*.example.com', routes: {}}}
- {{name: exact, port: {port}, protocol: HTTP, hostname: foo.example.com, routes: {}}}
backends:
  a: {{endpoints: [{{address: '{}'}}]}}
  b: {{endpoints: [{{address: '{}'}}]}}
  c: {{endpoints: [{{address: '{}'}}]}}
",
        route("a"),
        route("b"),
        route("c"),
        a.addr,
        b.addr,
        c.addr
    );
    let _p = Proxy::start(&yaml).await;
    let url = format!("http://127.0.0.1:{port}/");
    for (host, want) in [
        ("foo.example.com", "c"),
        ("bar.example.com", "b"),
        ("a.b.example.com", "b"),
        ("example.com", "a"),
        ("other.org", "a"),
    ] {
        assert_eq!(get(&url, &[("host", host)]).await.backend(), want, "{host}");
    }
}
