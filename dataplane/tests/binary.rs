//! The `pylon-dataplane` binary: `--config` file mode, SIGHUP reload (a bad file is rejected and
//! the old config keeps serving), admin endpoints, JSON access log, SIGTERM drain and exit.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use common::*;

/// One route whose answers carry `x-config: <header>`, telling which config served them.
fn cfg(port: u16, backend: std::net::SocketAddr, header: &str) -> String {
    let filter = format!(
        "filters: [{{type: ResponseHeaderModifier, set: [{{name: x-config, value: {header}}}]}}], "
    );
    one_route(port, backend, &filter)
}

/// Starts the binary on `file` (listeners on 127.0.0.1, admin on `admin`) with `extra` flags.
fn spawn(file: &std::path::Path, admin: u16, extra: &[&str], stdout: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pylon-dataplane"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--bind-addr",
            "127.0.0.1",
        ])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(extra)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test]
async fn file_mode_reload_and_drain() {
    let a = Backend::start("a").await;
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("pylon-bin-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(&file, cfg(port, a.addr, "one")).unwrap();

    let mut child = spawn(
        &file,
        admin,
        &["--drain-timeout-secs", "5", "--drain-delay-secs", "2"],
        Stdio::piped(),
    );
    wait_port(port).await;
    wait_port(admin).await;
    let url = format!("http://127.0.0.1:{port}/x");
    assert_eq!(get(&url, &[]).await.headers["x-config"], "one");
    assert_eq!(
        get(&format!("http://127.0.0.1:{admin}/ready"), &[])
            .await
            .status,
        200
    );

    // A good reload takes effect.
    std::fs::write(&file, cfg(port, a.addr, "two")).unwrap();
    signal(child.id(), "-HUP");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = get(&url, &[]).await.headers["x-config"]
            .to_str()
            .unwrap()
            .to_string();
        if seen == "two" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "two");

    // A bad one is rejected whole; the old config keeps serving and /ready says why.
    std::fs::write(
        &file,
        cfg(port, a.addr, "three").replace("endpoints: [{address:", "endpoints: [{adress:"),
    )
    .unwrap();
    signal(child.id(), "-HUP");
    let mut ready = serde_json::Value::Null;
    for _ in 0..100 {
        ready = get(&format!("http://127.0.0.1:{admin}/ready"), &[])
            .await
            .json();
        if !ready["lastError"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ready["lastError"]
            .as_str()
            .unwrap()
            .contains("backends.a.endpoints[0]"),
        "{ready}"
    );
    assert_eq!(get(&url, &[]).await.headers["x-config"], "two");

    // SIGTERM: not ready at once, but new connections are still served during the delay
    // (endpoints and kube-proxy rules have yet to move on); then it drains and exits cleanly.
    let mut keep_alive = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let start = Instant::now();
    signal(child.id(), "-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&format!("http://127.0.0.1:{admin}/ready"), &[]).await;
    assert_eq!(ready.status, 503, "ready while draining: {ready:?}");
    let during = get(&url, &[("connection", "close")]).await;
    assert_eq!(during.status, 200, "a new connection during the delay");
    // An idle keep-alive connection opened before the signal is closed once draining starts.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), keep_alive.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "draining began before the delay was over: {:?} {closed:?}",
        start.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still accepting after the delay"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("access log lines")).unwrap();
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "d/r");
    assert_eq!(line["path"], "/x");
    let _ = std::fs::remove_dir_all(dir);
}

/// Several workers share each port (`SO_REUSEPORT`): nothing fails to bind, fresh connections
/// (spread by the kernel over the workers) are all served, a port added by a reload is bound by
/// every worker, and a worker count of 0 is refused with a message naming the flag.
#[tokio::test]
async fn workers_share_listener_ports() {
    let a = Backend::start("a").await;
    let (port, port2, admin) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("pylon-workers-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(&file, cfg(port, a.addr, "one")).unwrap();

    let bad = Command::new(env!("CARGO_BIN_EXE_pylon-dataplane"))
        .args(["--config", file.to_str().unwrap(), "--workers", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--workers"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let mut child = spawn(
        &file,
        admin,
        &["--workers", "3", "--drain-delay-secs", "0"],
        Stdio::null(),
    );
    wait_port(port).await;
    wait_port(admin).await;
    let ready_url = format!("http://127.0.0.1:{admin}/ready");
    // Give every worker time to bind; a worker that could not would report it on /ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&ready_url, &[]).await.json();
    assert!(ready["lastError"].is_null(), "{ready}");
    for i in 0..60 {
        let got = get(
            &format!("http://127.0.0.1:{port}/n{i}"),
            &[("connection", "close")],
        )
        .await;
        assert_eq!(got.status, 200, "request {i}");
        assert_eq!(got.backend(), "a");
    }

    // A reload adding a port: every worker binds it.
    let two = cfg(port, a.addr, "two").replace(
        "listeners:\n",
        &format!(
            "listeners:\n- name: second\n  port: {port2}\n  protocol: HTTP\n  routes:\n  - kind: HTTPRoute\n    namespace: d\n    name: r2\n    creationTimestamp: '2024-01-01T00:00:00Z'\n    rules: [{{backendRefs: [{{type: Backend, name: a}}]}}]\n"
        ),
    );
    std::fs::write(&file, two).unwrap();
    signal(child.id(), "-HUP");
    wait_port(port2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&ready_url, &[]).await.json();
    assert!(ready["lastError"].is_null(), "{ready}");
    for i in 0..30 {
        let got = get(
            &format!("http://127.0.0.1:{port2}/m{i}"),
            &[("connection", "close")],
        )
        .await;
        assert_eq!(got.status, 200, "request {i} on the added port");
    }
    signal(child.id(), "-TERM");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
