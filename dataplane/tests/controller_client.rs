//! The controller client against a real axum server speaking config protocol v1: snapshot,
//! deltas, rejected snapshot and delta (nack with the field path), pings, a resync when the
//! stream's deltas build on a version the data plane does not run, reconnects that name the
//! running version.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get as route_get, post};
use common::*;
use futures::StreamExt;
use pylon_config::protocol::Ack;
use pylon_dataplane::client::{ClientError, ControllerClient, Transport};
use pylon_dataplane::limits::Limits;
use pylon_dataplane::server::ListenerManager;
use pylon_dataplane::state::Shared;
use tokio::sync::{Mutex, mpsc};

#[derive(Clone)]
struct Srv {
    /// Each new stream takes the next line source.
    streams: Arc<Mutex<mpsc::Receiver<mpsc::Receiver<String>>>>,
    acks: mpsc::Sender<Ack>,
    /// Per connection: Gateway, pod, Authorization, the `version` the data plane runs.
    seen: mpsc::Sender<(String, String, Option<String>, Option<String>)>,
    connections: Arc<AtomicUsize>,
}

async fn config_stream(
    State(s): State<Srv>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> axum::response::Response {
    s.connections.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = s
        .seen
        .send((
            format!("{ns}/{name}"),
            q.get("pod").cloned().unwrap_or_default(),
            auth,
            q.get("version").cloned(),
        ))
        .await;
    let lines = s
        .streams
        .lock()
        .await
        .recv()
        .await
        .expect("a stream per connection");
    let stream = futures::stream::unfold(lines, |mut rx| async move {
        rx.recv()
            .await
            .map(|l| (Ok::<_, std::convert::Infallible>(format!("{l}\n")), rx))
    });
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from_stream(stream))
        .unwrap()
}

/// A config stream that sends `body` and then stays open.
fn open_stream(body: String) -> axum::response::Response {
    let body = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) })
        .chain(futures::stream::pending());
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from_stream(body))
        .unwrap()
}

/// Serves `app` as the controller on loopback and runs a data plane's client against it
/// (plain HTTP, Gateway `infra/gw`, pod `pod-1`, no token).
async fn serve_and_connect(app: Router, shared: Arc<Shared>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctrl = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = ControllerClient::new(
        &format!("http://{ctrl}"),
        &Transport::Plaintext,
        "infra/gw",
        "pod-1",
        None,
        shared,
    )
    .unwrap();
    tokio::spawn(client.run());
}

async fn ack(State(s): State<Srv>, axum::Json(a): axum::Json<Ack>) {
    let _ = s.acks.send(a).await;
}

fn config_json(port: u16, addr: std::net::SocketAddr, path_regex: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "pylon.dev/dataplane/v1",
        "listeners": [{"name": "http", "port": port, "protocol": "HTTP", "routes": [{
            "kind": "HTTPRoute", "namespace": "d", "name": "r", "creationTimestamp": "2024-01-01T00:00:00Z",
            "rules": [{"matches": [{"path": {"type": "RegularExpression", "value": path_regex}}],
                       "backendRefs": [{"type": "Backend", "name": "web"}]}]}]}],
        "backends": {"web": {"endpoints": [{"address": addr.to_string()}]}}
    })
}

async fn next_ack(rx: &mut mpsc::Receiver<Ack>) -> Ack {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("ack in time")
        .unwrap()
}

#[tokio::test]
async fn streams_applies_acks_and_reconnects() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (streams_tx, streams_rx) = mpsc::channel(4);
    let (acks_tx, mut acks) = mpsc::channel(16);
    let (seen_tx, mut seen) = mpsc::channel(4);
    let srv = Srv {
        streams: Arc::new(Mutex::new(streams_rx)),
        acks: acks_tx,
        seen: seen_tx,
        connections: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/v1/gateways/{ns}/{name}/config", route_get(config_stream))
        .route("/v1/gateways/{ns}/{name}/ack", post(ack))
        .with_state(srv.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctrl = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let token = std::env::temp_dir().join(format!("pylon-token-{}", std::process::id()));
    std::fs::write(&token, "s3cret\n").unwrap();
    let shared = Shared::new();
    let (_drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(
        ListenerManager::new(
            shared.clone(),
            "127.0.0.1".parse().unwrap(),
            Limits::default(),
            drain_rx,
        )
        .run(),
    );
    let client = ControllerClient::new(
        &format!("http://{ctrl}"),
        &Transport::Plaintext,
        "infra/gw",
        "pod-1",
        Some(token.clone()),
        shared.clone(),
    )
    .unwrap();
    tokio::spawn(client.run());

    let (line_tx, line_rx) = mpsc::channel(8);
    streams_tx.send(line_rx).await.unwrap();
    let (gw, pod, auth, running) = seen.recv().await.unwrap();
    assert_eq!(
        (gw.as_str(), pod.as_str(), auth.as_deref(), running),
        ("infra/gw", "pod-1", Some("Bearer s3cret"), None)
    );

    let port = free_port();
    let snap = serde_json::json!({"type": "snapshot", "version": "1", "config": config_json(port, a.addr, "/.*")});
    line_tx.send(snap.to_string()).await.unwrap();
    let ack1 = next_ack(&mut acks).await;
    assert_eq!(
        (ack1.pod.as_str(), ack1.version.as_str(), ack1.accepted),
        ("pod-1", "1", true)
    );
    wait_port(port).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/x"), &[])
            .await
            .backend(),
        "a"
    );

    let serves = |want: &'static str, why: &'static str| async move {
        let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
        assert_eq!(got.backend(), want, "{why}");
    };
    line_tx.send(r#"{"type":"ping"}"#.into()).await.unwrap();
    let eps = |version: &str, base: &str, addr: std::net::SocketAddr| {
        serde_json::json!({"type": "delta", "version": version, "base": base,
            "delta": {"backends": {"web": {"endpoints": [{"address": addr.to_string()}]}}}})
        .to_string()
    };
    line_tx.send(eps("2", "1", b.addr)).await.unwrap();
    let ack2 = next_ack(&mut acks).await;
    assert_eq!((ack2.version.as_str(), ack2.accepted), ("2", true));
    serves("b", "a delta's endpoints serve").await;

    let bad = serde_json::json!({"type": "snapshot", "version": "3", "config": config_json(port, a.addr, "([")});
    line_tx.send(bad.to_string()).await.unwrap();
    let ack3 = next_ack(&mut acks).await;
    assert_eq!((ack3.version.as_str(), ack3.accepted), ("3", false));
    let err = ack3.error.unwrap();
    assert!(
        err.contains("listeners[0].routes[0].rules[0].matches[0].path.value: regex parse error"),
        "{err}"
    );
    serves("b", "old config still serves").await;

    // The stream builds on the rejected version: no ack, a new stream naming version 2.
    let (line_tx2, line_rx2) = mpsc::channel(8);
    streams_tx.send(line_rx2).await.unwrap();
    line_tx.send(eps("4", "3", a.addr)).await.unwrap();
    let (_, _, _, running) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("resynced")
        .unwrap();
    assert_eq!(running.as_deref(), Some("2"));
    serves("b", "a delta on another base changes nothing").await;
    line_tx2.send(eps("5", "2", a.addr)).await.unwrap();
    let ack5 = next_ack(&mut acks).await;
    assert_eq!((ack5.version.as_str(), ack5.accepted), ("5", true));
    serves("a", "resumed by a delta").await;

    // A bad delta is rejected whole, with the field path in the new config.
    let route = |regex: &str| {
        serde_json::json!({"kind": "HTTPRoute", "namespace": "d", "name": "r",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "rules": [{"matches": [{"path": {"type": "RegularExpression", "value": regex}}],
                       "backendRefs": [{"type": "Backend", "name": "web"}]}]})
    };
    let bad = serde_json::json!({"type": "delta", "version": "6", "base": "5", "delta": {
        "routes": [{"listener": "http", "kind": "HTTPRoute", "namespace": "d", "name": "r",
                    "routes": [route("([")]}],
        "backends": {"web": {"endpoints": [{"address": b.addr.to_string()}]}}}});
    line_tx2.send(bad.to_string()).await.unwrap();
    let ack6 = next_ack(&mut acks).await;
    assert_eq!((ack6.version.as_str(), ack6.accepted), ("6", false));
    let err = ack6.error.unwrap();
    assert!(
        err.contains("listeners[0].routes[0].rules[0].matches[0].path.value: regex parse error"),
        "{err}"
    );
    serves("a", "nothing of a rejected delta applies").await;
    let fine = serde_json::json!({"type": "delta", "version": "7", "base": "5", "delta": {
        "routes": [{"listener": "http", "kind": "HTTPRoute", "namespace": "d", "name": "r",
                    "routes": [route("/y.*")]}]}});
    line_tx2.send(fine.to_string()).await.unwrap();
    assert!(next_ack(&mut acks).await.accepted);
    let status = |path: &'static str| async move {
        get(&format!("http://127.0.0.1:{port}{path}"), &[])
            .await
            .status
    };
    assert_eq!(status("/x").await, 404, "the route's new match applies");
    assert_eq!(status("/yes").await, 200);

    // Stream loss: the last good config keeps serving, the client reconnects naming it.
    let (line_tx3, line_rx3) = mpsc::channel(8);
    streams_tx.send(line_rx3).await.unwrap();
    drop(line_tx2);
    drop(line_tx);
    let (_, _, _, running) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("reconnected")
        .unwrap();
    assert_eq!(running.as_deref(), Some("7"));
    assert_eq!(status("/yes").await, 200);
    let snap8 = serde_json::json!({"type": "snapshot", "version": "8", "config": config_json(port, b.addr, "/.*")});
    line_tx3.send(snap8.to_string()).await.unwrap();
    assert!(next_ack(&mut acks).await.accepted);
    serves("b", "a snapshot replaces everything").await;
    assert_eq!(srv.connections.load(Ordering::SeqCst), 3);
    let _ = std::fs::remove_file(token);
}

/// Plain HTTP is chosen only explicitly, a CA only with https://, and each mistake says what to
/// do instead.
#[test]
fn transport_must_match_the_url_scheme() {
    let err = |r: Result<Transport, ClientError>| r.unwrap_err().to_string();
    assert!(
        err(Transport::from_flags("http://c:1", None, false)).contains("--controller-plaintext"),
        "plain HTTP needs the explicit flag"
    );
    assert!(err(Transport::from_flags("https://c:1", None, false)).contains("--config-ca"));
    let missing = std::path::Path::new("/nonexistent/ca.crt");
    assert!(
        err(Transport::from_flags("https://c:1", Some(missing), false))
            .contains("/nonexistent/ca.crt")
    );
    assert!(matches!(
        Transport::from_flags("http://c:1", None, true),
        Ok(Transport::Plaintext)
    ));

    let shared = Shared::new();
    let ca = Transport::Tls {
        ca_pem: include_str!("certs/ca.pem").into(),
    };
    let new = |url: &str, t: &Transport| {
        ControllerClient::new(url, t, "a/b", "p", None, shared.clone()).map(|_| ())
    };
    assert!(new("https://c:1", &ca).is_ok());
    assert!(matches!(
        new("http://c:1", &ca),
        Err(ClientError::HttpWithCa(_))
    ));
    assert!(matches!(
        new("https://c:1", &Transport::Plaintext),
        Err(ClientError::HttpsInPlaintextMode(_))
    ));
    let garbage = Transport::Tls {
        ca_pem: "not a certificate".into(),
    };
    let e = new("https://c:1", &garbage).unwrap_err().to_string();
    assert!(e.starts_with("config CA: "), "{e}");
}

#[test]
fn rejects_bad_arguments() {
    let shared = Shared::new();
    for (url, gw) in [
        ("ftp://x:1", "a/b"),
        ("http://x:1", "nogateway"),
        ("http://x:1", "a/b/c"),
        ("not a url", "a/b"),
    ] {
        assert!(
            ControllerClient::new(url, &Transport::Plaintext, gw, "p", None, shared.clone())
                .is_err(),
            "{url} {gw}"
        );
    }
}

/// A controller replica that answers the first ack with 503 (e.g. it is shutting down): the data
/// plane retries, so the ack status waits on still arrives.
#[tokio::test]
async fn retries_an_ack_the_controller_failed() {
    let backend = Backend::start("a").await;
    let port = free_port();
    let snap = serde_json::json!({"type": "snapshot", "version": "7", "config": config_json(port, backend.addr, "/.*")});
    let attempts = Arc::new(AtomicUsize::new(0));
    let (acks_tx, mut acks) = mpsc::channel::<Ack>(4);
    let app = Router::new()
        .route(
            "/v1/gateways/{ns}/{name}/config",
            // One snapshot, then the stream stays open.
            route_get(move || std::future::ready(open_stream(format!("{snap}\n")))),
        )
        .route(
            "/v1/gateways/{ns}/{name}/ack",
            post({
                let attempts = attempts.clone();
                move |axum::Json(a): axum::Json<Ack>| async move {
                    if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    acks_tx.send(a).await.unwrap();
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
    serve_and_connect(app, Shared::new()).await;

    let ack = next_ack(&mut acks).await;
    assert_eq!((ack.version.as_str(), ack.accepted), ("7", true));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "one failed attempt, one retry"
    );
}

/// Acks never hold the stream up: with the controller not answering acks at all, a burst of
/// deltas is still applied through to the last, and once acks are answered the newest version
/// is acked (the intermediate ones need not be).
#[tokio::test]
async fn a_slow_ack_does_not_hold_up_the_stream() {
    let backend = Backend::start("a").await;
    let port = free_port();
    let mut lines = vec![
        serde_json::json!({"type": "snapshot", "version": "0", "config": config_json(port, backend.addr, "/.*")})
            .to_string(),
    ];
    for v in 1..=20 {
        lines.push(
            serde_json::json!({"type": "delta", "version": v.to_string(), "base": (v - 1).to_string(),
                "delta": {"backends": {"web": {"endpoints": [{"address": format!("10.0.0.{v}:80")}]}}}})
            .to_string(),
        );
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (acks_tx, mut acks) = mpsc::channel::<Ack>(64);
    let app = Router::new()
        .route(
            "/v1/gateways/{ns}/{name}/config",
            route_get(move || std::future::ready(open_stream(lines.join("\n") + "\n"))),
        )
        .route(
            "/v1/gateways/{ns}/{name}/ack",
            post({
                let gate = gate.clone();
                move |axum::Json(a): axum::Json<Ack>| async move {
                    gate.acquire().await.unwrap().forget();
                    acks_tx.send(a).await.unwrap();
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
    let shared = Shared::new();
    serve_and_connect(app, shared.clone()).await;

    let version = || shared.table().map(|t| t.version.clone());
    tokio::time::timeout(Duration::from_secs(10), async {
        while version().as_deref() != Some("20") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every delta applied while no ack was answered");
    assert!(acks.try_recv().is_err(), "no ack was answered yet");

    gate.add_permits(100);
    let mut seen = vec![];
    while seen.last().map(String::as_str) != Some("20") {
        let ack = next_ack(&mut acks).await;
        assert!(ack.accepted, "{ack:?}");
        seen.push(ack.version);
    }
    assert!(
        seen.len() < 21,
        "acks are coalesced to the newest: {seen:?}"
    );
}
