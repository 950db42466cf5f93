//! Backends that die: a refused or unanswered connect moves the request to another endpoint
//! (nothing was sent), an endpoint that keeps failing is ejected, and a pooled connection to a
//! backend that vanished cannot hold a request for the kernel's 15 minutes. On both HTTP/1.1
//! engines (the hyper path also serves what the native one hands it).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use pylon_dataplane::limits::Limits;
use pylon_dataplane::server::Http1;

/// An address nothing listens on: connects are refused.
fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener whose accept queue is full and never drained: further SYNs get no answer, as
/// for a Pod whose IP is gone. Returns it (keep it alive) with its address.
fn black_hole() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue: connects complete until it is full, then hang.
    let mut held = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => held.push(c),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the accept queue never filled");
    }
    (s, held, addr)
}

fn two_endpoints(port: u16, dead: SocketAddr, live: SocketAddr) -> String {
    let yaml = one_route(port, live, "");
    yaml.replace(
        &format!("endpoints: [{{address: '{live}'}}]"),
        &format!("endpoints: [{{address: '{dead}'}}, {{address: '{live}'}}]"),
    )
}

fn ejected(p: &Proxy, ep: usize) -> bool {
    p.shared.table().unwrap().backends["a"].health.ejected(ep)
}

#[tokio::test]
async fn a_refused_endpoint_is_failed_over_and_ejected() {
    let live = Backend::start("live").await;
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let yaml = two_endpoints(port, refused_addr(), live.addr);
        let p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
        let url = format!("http://127.0.0.1:{port}/x");
        for i in 0..8 {
            let got = get(&url, &[]).await;
            assert_eq!(got.status, 200, "{engine:?} request {i}: {got:?}");
            assert_eq!(got.backend(), "live");
        }
        // Round-robin sent every other request to the dead endpoint first: 3 failed connects
        // in a row ejected it.
        assert!(
            ejected(&p, 0),
            "{engine:?}: the refusing endpoint is not ejected"
        );
        assert!(!ejected(&p, 1), "{engine:?}: the live endpoint is ejected");
        let got = send(&http1(), "POST", &url, &[]).await;
        assert_eq!(got.status, 200, "{engine:?}: {got:?}");
    }
}

/// A streamed request body (chunked HTTP/1.1, which the native engine hands to hyper, and an
/// HTTP/2 body) fails over too: a failed connect read nothing of it, so it goes whole to the
/// next endpoint.
#[tokio::test]
async fn a_streamed_body_is_failed_over_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = Backend::start("live").await;
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let yaml = two_endpoints(port, refused_addr(), live.addr);
        let p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
        // Round-robin: every other request tries the refusing endpoint first (until it is
        // ejected after 3).
        for i in 0..4 {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            c.write_all(
                b"POST /x HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "{engine:?} chunked {i}: {answer}"
            );
            assert!(
                answer.contains(r#""body":"hello world""#),
                "{engine:?} chunked {i}: the body did not arrive whole: {answer}"
            );
        }
        assert!(
            ejected(&p, 0),
            "{engine:?}: the refusing endpoint is not ejected"
        );
    }
    let port = free_port();
    let p = Proxy::start(&two_endpoints(port, refused_addr(), live.addr)).await;
    for i in 0..4 {
        let req = http::Request::post(format!("http://127.0.0.1:{port}/x"))
            .header("host", "a.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"over h2",
            )))
            .unwrap();
        let got = collect(h2c().request(req).await.unwrap()).await;
        assert_eq!(got.status, 200, "h2c {i}: {got:?}");
        assert_eq!(got.json()["body"], "over h2", "h2c {i}");
    }
    assert!(ejected(&p, 0), "h2c: the refusing endpoint is not ejected");
}

#[tokio::test]
async fn an_unanswered_connect_times_out_and_the_request_moves_on() {
    let live = Backend::start("live").await;
    let (_hole, _held, dead) = black_hole();
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let p = Proxy::start_engine(
            &two_endpoints(port, dead, live.addr),
            Limits::default(),
            engine,
        )
        .await;
        let url = format!("http://127.0.0.1:{port}/x");
        let mut waited = 0;
        for _ in 0..6 {
            let t = std::time::Instant::now();
            let got = get(&url, &[]).await;
            assert_eq!(got.status, 200, "{engine:?}: {got:?}");
            assert_eq!(got.backend(), "live");
            // The connect timeout (1 s), not the client's patience, is what a request waits.
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{engine:?}: {:?}",
                t.elapsed()
            );
            if t.elapsed() >= Duration::from_millis(900) {
                waited += 1;
            }
        }
        assert!(
            ejected(&p, 0),
            "{engine:?}: the silent endpoint is not ejected"
        );
        assert_eq!(
            waited, 3,
            "{engine:?}: requests that waited for the connect timeout"
        );
    }
}

#[tokio::test]
async fn with_every_endpoint_down_the_answer_is_503() {
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let yaml = two_endpoints(port, refused_addr(), refused_addr());
        let p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
        for _ in 0..4 {
            let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
            assert_eq!(got.status, 503, "{engine:?}");
        }
        // Both ejected: picks go on (better a chance than a certain 503) and still answer.
        assert!(ejected(&p, 0) && ejected(&p, 1), "{engine:?}");
        let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
        assert_eq!(got.status, 503, "{engine:?}");
    }
}

#[tokio::test]
async fn backend_connections_give_up_on_unacknowledged_data() {
    let live = Backend::start("live").await;
    let s = pylon_dataplane::tcp_pool::connect(live.addr, Duration::from_secs(1))
        .await
        .unwrap();
    let timeout = socket2::SockRef::from(&s).tcp_user_timeout().unwrap();
    assert_eq!(timeout, Some(Duration::from_secs(3)));
}

/// A backend that reads each request and closes the connection without a byte of answer, as
/// a Pod killed while the request was on its way does.
async fn hangs_up() -> SocketAddr {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_idempotent_request_left_unanswered_goes_to_another_endpoint() {
    let live = Backend::start("live").await;
    let port = free_port();
    let _p = Proxy::start(&two_endpoints(port, hangs_up().await, live.addr)).await;
    let url = format!("http://127.0.0.1:{port}/x");
    for i in 0..4 {
        let got = get(&url, &[("connection", "close")]).await;
        assert_eq!(got.status, 200, "GET {i}: {got:?}");
        assert_eq!(got.backend(), "live");
    }
    // Not idempotent: it may have been acted on, so it is not sent again.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(send(&http1(), "POST", &url, &[]).await.status.as_u16());
    }
    assert!(answers.contains(&502), "{answers:?}");
}

/// `one_route` to a backend with the endpoints and settings `backend` (YAML flow mapping
/// entries, e.g. `endpoints: [...]`).
fn route_to(port: u16, backend: &str) -> String {
    let placeholder = refused_addr();
    one_route(port, placeholder, "").replace(
        &format!("endpoints: [{{address: '{placeholder}'}}]"),
        backend,
    )
}

#[tokio::test]
async fn terminating_endpoints_serve_only_while_none_is_ready() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    let (ready, not_ready) = ("ready: true", "ready: false");
    let terminating = "ready: false, serving: true";
    let not_serving = "ready: false, serving: false";
    let ep = |b: &Backend, conditions: &str| format!("{{address: '{}', {conditions}}}", b.addr);
    let cases = [
        // A rolling update of a one-Pod backend: the old Pod drains, the new one is not
        // ready yet. The old one serves rather than a 503.
        (
            vec![ep(&old, terminating), ep(&new, not_ready)],
            Some("old"),
        ),
        // The new Pod is ready: it takes every request, the draining one none.
        (vec![ep(&old, terminating), ep(&new, ready)], Some("new")),
        // Terminating and no longer serving, or just not ready: never sent to.
        (vec![ep(&old, not_serving), ep(&new, not_ready)], None),
    ];
    for engine in [Http1::Native, Http1::Hyper] {
        for (endpoints, want) in &cases {
            let port = free_port();
            let yaml = route_to(port, &format!("endpoints: [{}]", endpoints.join(", ")));
            let _p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
            for _ in 0..4 {
                let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
                match want {
                    Some(id) => {
                        assert_eq!(got.status, 200, "{engine:?} {endpoints:?}: {got:?}");
                        assert_eq!(got.backend(), *id, "{engine:?} {endpoints:?}");
                    }
                    None => assert_eq!(got.status, 503, "{engine:?} {endpoints:?}: {got:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn a_backend_connect_timeout_replaces_the_default() {
    let (_hole, _held, dead) = black_hole();
    let configured = Duration::from_millis(200);
    let tls = format!(
        "http1, tls: {{caPem: {}, hostname: backend.internal}}",
        serde_json::to_string(&pem("ca.pem")).unwrap()
    );
    // HTTP/1.1 goes through the pools of either engine, h2c through hyper's connector, TLS
    // through Pylon's TLS connector for hyper.
    for (engine, label, protocol) in [
        (Http1::Native, "http1", "http1"),
        (Http1::Hyper, "http1", "http1"),
        (Http1::Native, "h2c", "h2c"),
        (Http1::Native, "tls", tls.as_str()),
    ] {
        let port = free_port();
        let yaml = route_to(
            port,
            &format!(
                "protocol: {protocol}, connectTimeout: 200ms, endpoints: [{{address: '{dead}'}}]"
            ),
        );
        let _p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
        let t = std::time::Instant::now();
        let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
        let waited = t.elapsed();
        assert_eq!(got.status, 503, "{engine:?} {label}: {got:?}");
        // The one endpoint's connect was given up after the backend's timeout, not the
        // default 1 s (a behaviour check with a wide margin, not a measurement).
        assert!(
            waited >= configured - Duration::from_millis(20) && waited < Duration::from_millis(700),
            "{engine:?} {label}: answered after {waited:?}"
        );
    }
}

#[tokio::test]
async fn an_ejection_outlives_an_endpoint_update() {
    let live = Backend::start("live").await;
    let other = Backend::start("other").await;
    let dead = refused_addr();
    let port = free_port();
    let p = Proxy::start(&two_endpoints(port, dead, live.addr)).await;
    let url = format!("http://127.0.0.1:{port}/x");
    for _ in 0..8 {
        assert_eq!(get(&url, &[]).await.status, 200);
    }
    assert!(ejected(&p, 0), "the refusing endpoint is not ejected");
    let index_of = |addr: SocketAddr| {
        let t = p.shared.table().unwrap();
        t.backends["a"].endpoints.iter().position(|a| *a == addr)
    };
    // An EndpointSlice update adds a Pod (a delta, as the controller sends it): the dead
    // endpoint stays ejected, the new one starts healthy.
    let mut backend = p.shared.table().unwrap().config.backends["a"].clone();
    backend
        .endpoints
        .insert(0, pylon_config::Endpoint::ready(other.addr));
    let delta = pylon_config::delta::Delta {
        backends: [("a".to_string(), backend.clone())].into(),
        ..Default::default()
    };
    p.shared.apply_delta("v2", "v1", &delta).unwrap();
    let dead_at = index_of(dead).expect("still an endpoint");
    assert_eq!(dead_at, 1, "moved by the new endpoint");
    assert!(ejected(&p, dead_at), "a delta ended the ejection");
    assert!(!ejected(&p, index_of(other.addr).unwrap()));
    // A whole snapshot (a reconnect) keeps it as well.
    let mut config = (*p.shared.table().unwrap().config).clone();
    config.backends.get_mut("a").unwrap().endpoints.pop();
    p.shared.apply("v3", config).unwrap();
    assert!(
        ejected(&p, index_of(dead).unwrap()),
        "a snapshot ended the ejection"
    );
    // And requests are served meanwhile.
    for _ in 0..6 {
        assert_eq!(get(&url, &[]).await.status, 200);
    }
}
