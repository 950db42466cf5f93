//! TCP listeners (TCPRoutes): plain TCP clients through the data plane to real line backends;
//! what the backend reads and answers is exactly what the client sent and reads.

mod common;
#[path = "common/tls_route.rs"]
mod tls_route;

use std::sync::atomic::Ordering;

use common::{Proxy, free_port};
use pylon_dataplane::metrics::{L4Outcome as Outcome, L4Protocol};
use tls_route::{LineBackend, T1, T2, closed_silently, endpoints, eventually, last_log_line};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A TCPRoute named `name` (no hostnames) with backendRefs `refs` (a YAML list).
fn route(name: &str, created: &str, refs: &str) -> String {
    format!(
        "{{kind: TCPRoute, namespace: d, name: {name}, creationTimestamp: '{created}', rules: [{{backendRefs: {refs}}}]}}"
    )
}

/// A config with one TCP listener on `port` holding `routes`, and an HTTP listener on
/// `http_port` if given.
fn config(port: u16, routes: &[String], backends: &str, http_port: Option<u16>) -> String {
    let mut yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1\nlisteners:\n- {{name: tcp, port: {port}, protocol: TCP, routes: [{}]}}\n",
        routes.join(", ")
    );
    if let Some(h) = http_port {
        yaml += &format!(
            "- {{name: web, port: {h}, protocol: HTTP, routes: [{{kind: HTTPRoute, namespace: d, name: web, creationTimestamp: '{T1}', rules: [{{backendRefs: [{{type: Backend, name: h}}]}}]}}]}}\n"
        );
    }
    yaml + &format!("backends: {backends}\n")
}

/// Starts a data plane on `yaml` and waits until the connection that found its TCP port open
/// was counted (relayed or not), so the tests count only their own.
async fn start(yaml: &str) -> Proxy {
    let p = Proxy::start(yaml).await;
    let m = &p.shared.metrics;
    eventually("the port probe counted", || {
        [
            Outcome::Relayed,
            Outcome::NoRoute,
            Outcome::InvalidBackend,
            Outcome::BackendUnavailable,
        ]
        .iter()
        .map(|o| m.l4_connections(L4Protocol::Tcp, *o))
        .sum::<u64>()
            == 1
    })
    .await;
    p
}

/// Sends each of `lines` over one connection to `port`, then half-closes; every line read
/// back until the end (the backend answers `<id> <line>` per line and `<id> eof` last).
async fn talk(port: u16, lines: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for l in lines {
        s.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line).await.unwrap_or(0) > 0 {
        out.push(line.trim_end().to_string());
        line.clear();
    }
    out
}

#[tokio::test]
async fn a_connection_is_relayed_both_ways_with_half_close() {
    let a = LineBackend::tcp("a").await;
    let port = free_port();
    let p = start(&config(
        port,
        &[route("r", T1, "[{type: Backend, name: a}]")],
        &endpoints(&[("a", &[a.addr])]),
        None,
    ))
    .await;
    p.shared.access_log.store(true, Ordering::Relaxed);
    // The backend's `eof` line comes after the client's FIN: the half-close went through and
    // the other direction stayed open.
    assert_eq!(
        talk(port, &["one", "two"]).await,
        ["a one", "a two", "a eof"]
    );
    assert_eq!(a.received(), b"one\ntwo\n");
    let m = &p.shared.metrics;
    eventually("a relayed TCP connection counted", || {
        m.l4_connections(L4Protocol::Tcp, Outcome::Relayed) == 2
    })
    .await;
    assert_eq!(m.l4_connections(L4Protocol::Tls, Outcome::Relayed), 0);
    let text = m.render(true);
    assert!(
        text.contains("pylon_l4_bytes_total{protocol=\"tcp\",direction=\"client_to_backend\"} 8\n"),
        "{text}"
    );
    let line = last_log_line(&p.shared).await;
    assert_eq!(line["protocol"], "tcp", "{line}");
    assert_eq!(line["route"], "d/r");
    assert_eq!(line["backend"], a.addr.to_string());
    assert_eq!(line["outcome"], "relayed");
    assert!(line["sni"].is_null() && line["mode"].is_null(), "{line}");
}

#[tokio::test]
async fn the_oldest_route_takes_every_connection_and_weights_split_them() {
    let old_a = LineBackend::tcp("old-a").await;
    let old_b = LineBackend::tcp("old-b").await;
    let newer = LineBackend::tcp("newer").await;
    let port = free_port();
    // Listed newest first: the age decides, not the order.
    let _p = start(&config(
        port,
        &[
            route("newer", T2, "[{type: Backend, name: newer}]"),
            route(
                "old",
                T1,
                "[{type: Backend, name: old-a, weight: 1}, {type: Backend, name: old-b, weight: 1}]",
            ),
        ],
        &endpoints(&[
            ("old-a", &[old_a.addr]),
            ("old-b", &[old_b.addr]),
            ("newer", &[newer.addr]),
        ]),
        None,
    ))
    .await;
    for _ in 0..40 {
        let answer = talk(port, &["x"]).await;
        assert!(answer[0].starts_with("old-"), "{answer:?}");
    }
    assert_eq!(newer.hits(), 0);
    // 40 draws at even weights (and the port probe): both get some (all on one side: 2 in
    // 10^12).
    assert!(old_a.hits() > 1 && old_b.hits() > 1);
    assert_eq!(old_a.hits() + old_b.hits(), 41);
}

#[tokio::test]
async fn without_a_route_or_endpoint_the_connection_is_closed() {
    let port = free_port();
    let dead = free_port();
    let p = start(&config(
        port,
        &[route("r", T1, "[{type: Backend, name: gone}]")],
        &format!("{{gone: {{endpoints: [{{address: '127.0.0.1:{dead}'}}]}}}}"),
        None,
    ))
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(closed_silently(&mut s).await);
    eventually("an unavailable backend counted", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tcp, Outcome::BackendUnavailable)
            == 2
    })
    .await;
    // The route removed: the listener stays, with nothing to relay to.
    let empty = config(port, &[], "{}", None);
    p.shared
        .apply("v2", pylon_config::parse_str(&empty).unwrap())
        .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(closed_silently(&mut s).await);
    eventually("a connection without a route counted", || {
        p.shared
            .metrics
            .l4_connections(L4Protocol::Tcp, Outcome::NoRoute)
            == 1
    })
    .await;
}

#[tokio::test]
async fn a_tcp_listener_beside_an_http_one_serves_only_bytes() {
    let a = LineBackend::tcp("a").await;
    let port = free_port();
    let http = free_port();
    let _p = start(&config(
        port,
        &[route("r", T1, "[{type: Backend, name: a}]")],
        &format!(
            "{{a: {{endpoints: [{{address: '{}'}}]}}, h: {{endpoints: [{{address: '{}'}}]}}}}",
            a.addr, a.addr
        ),
        Some(http),
    ))
    .await;
    // An HTTP request to the TCP port is not parsed: the backend reads its bytes as lines.
    let answer = talk(port, &["GET / HTTP/1.1", "Host: x"]).await;
    assert_eq!(answer, ["a GET / HTTP/1.1", "a Host: x", "a eof"]);
}
