//! Hot reload: swaps under load lose no request, a bad config is rejected whole while the old
//! one keeps serving (and /ready and the metrics say so), and listener ports follow the config.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use pylon_config as config;

fn cfg(ports: &[u16], backend: &str, addr: std::net::SocketAddr) -> String {
    let listeners: String = ports
        .iter()
        .map(|p| {
            format!(
                "- name: l{p}\n  port: {p}\n  protocol: HTTP\n  routes: [{{kind: HTTPRoute, namespace: d, name: r, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{backendRefs: [{{type: Backend, name: {backend}}}]}}]}}]\n"
            )
        })
        .collect();
    format!(
        "apiVersion: pylon.dev/dataplane/v1\nlisteners:\n{listeners}backends:\n  {backend}: {{endpoints: [{{address: '{addr}'}}]}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let p = Proxy::start(&cfg(&[port], "a", a.addr)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for i in 0..8 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        // Half keep-alive HTTP/1.1, half h2c: open connections must survive the swaps.
        let client = if i % 2 == 0 { http1() } else { h2c() };
        workers.push(tokio::spawn(async move {
            let url = format!("http://127.0.0.1:{port}/x");
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                match client.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = collect(r).await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for i in 0..40 {
        let (name, addr) = if i % 2 == 0 {
            ("b", b.addr)
        } else {
            ("a", a.addr)
        };
        let c = config::parse_str(&cfg(&[port], name, addr)).unwrap();
        p.shared.apply(&format!("v{i}"), c).unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("reload under load: {ok} requests, {failed} failed, 40 swaps");
    assert!(ok > 50, "only {ok} requests completed");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during reloads",
        ok + failed
    );
    assert!(a.hits() > 0 && b.hits() > 0, "both configs served");
}

#[tokio::test]
async fn invalid_config_is_rejected_whole_and_ports_follow_the_config() {
    let a = Backend::start("a").await;
    let (port, port2) = (free_port(), free_port());
    let p = Proxy::start(&cfg(&[port], "a", a.addr)).await;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let router = pylon_dataplane::admin::router(p.shared.clone());
    tokio::spawn(async move { axum::serve(admin, router).await });

    // Semantically invalid (regex) → rejected, the old table keeps serving.
    let bad = cfg(&[port], "a", a.addr).replace(
        "rules: [{",
        "rules: [{matches: [{path: {type: RegularExpression, value: '(['}}], ",
    );
    let bad = config::parse_str(&bad);
    assert!(bad.is_err(), "parse_str validates");
    let mut c = config::parse_str(&cfg(&[port], "a", a.addr)).unwrap();
    std::sync::Arc::make_mut(&mut c.listeners[0].routes[0]).rules[0].matches =
        vec![config::RouteMatch {
            path: Some(config::PathMatch::RegularExpression { value: "([".into() }),
            ..Default::default()
        }];
    let err = p.shared.apply("bad", c).unwrap_err().to_string();
    assert!(
        err.contains("listeners[0].routes[0].rules[0].matches[0].path.value: regex parse error"),
        "{err}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/"), &[])
            .await
            .backend(),
        "a"
    );
    let ready = get(&format!("http://{admin_addr}/ready"), &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["version"], "v1");
    assert!(
        ready.json()["lastError"]
            .as_str()
            .unwrap()
            .contains("regex parse error")
    );
    let metrics = get(&format!("http://{admin_addr}/metrics"), &[]).await.body;
    assert!(
        metrics.contains("pylon_config_rejections_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pylon_config_info{version=\"v1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pylon_requests_total{route=\"d/r\",code=\"200\"}"),
        "{metrics}"
    );
    let dump = get(&format!("http://{admin_addr}/config_dump"), &[])
        .await
        .json();
    assert_eq!(dump["config"]["listeners"][0]["port"], port);

    // Moving to a new port binds it and unbinds the old one.
    p.shared
        .apply(
            "v2",
            config::parse_str(&cfg(&[port2], "a", a.addr)).unwrap(),
        )
        .unwrap();
    wait_port(port2).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port2}/"), &[])
            .await
            .backend(),
        "a"
    );
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "old port {port} still accepting");
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_rejects_the_config() {
    let a = Backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&cfg(&[port], "a", a.addr)).await;
    // Someone else holds this port.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let err = p
        .shared
        .apply(
            "v2",
            config::parse_str(&cfg(&[port, taken], "a", a.addr)).unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("listeners[1].port: cannot bind 127.0.0.1:{taken}")),
        "{err}"
    );
    assert_eq!(p.shared.table().unwrap().version, "v1", "old config kept");
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/"), &[])
            .await
            .backend(),
        "a"
    );
    // Ports the data plane already holds are not trial-bound again.
    p.shared
        .apply("v3", config::parse_str(&cfg(&[port], "a", a.addr)).unwrap())
        .unwrap();
    drop(squatter);
}
