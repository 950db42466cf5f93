//! The config server over real HTTP on loopback: snapshot first, deltas on endpoint and route
//! changes, pings, acks, and streams that resume from the version a data plane runs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pylon_config::protocol::Update;
use pylon_controller::auth::Authenticator;
use pylon_controller::config_hub::ConfigHub;
use pylon_controller::config_server::router;
use pylon_controller::model::ObjectKey;
use pylon_controller::snapshot::{Options, Snapshot};

const INPUT: &str = include_str!("translate/basic-http-route.yaml");

struct Lines {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Update {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).expect("each line is an Update");
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("an update within 5 s")
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next line, which must be a delta to `version` from `base`.
    async fn next_delta(&mut self, version: &str, base: &str) -> pylon_config::delta::Delta {
        match self.next().await {
            Update::Delta {
                version: v,
                base: b,
                delta,
            } => {
                assert_eq!((v.as_str(), b.as_str()), (version, base));
                delta
            }
            other => panic!("expected a delta, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn streams_snapshots_endpoints_pings_and_records_acks() {
    let snapshot = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
    let t = pylon_controller::translate::translate(&snapshot);
    let key = ObjectKey::new("default", "gw");
    let config = t.configs[&key].clone();

    let hub = Arc::new(ConfigHub::default());
    let v1 = hub.publish(&key, config.clone());
    assert_eq!(
        hub.publish(&key, config.clone()),
        v1,
        "an unchanged config keeps its version"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(hub.clone(), Duration::from_millis(300), Authenticator::Open);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{addr}/v1/gateways/default/gw/config?pod=p1");
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut lines = Lines {
        body: resp.into_body(),
        buf: vec![],
    };

    match lines.next().await {
        Update::Snapshot { version, config: c } => {
            assert_eq!(version, v1.to_string());
            assert_eq!(*c, config);
        }
        other => panic!("expected a snapshot first, got {other:?}"),
    }

    // Only endpoints change: a delta with that backend alone.
    let v2 = hub.publish(&key, fewer_of(&config));
    let delta = lines.next_delta(&v2, &v1).await;
    assert_eq!(delta.backends.len(), 1);
    assert_eq!(delta.backends["default/echo:8080"].endpoints.len(), 1);
    assert!(delta.routes.is_empty() && delta.listeners.is_empty());

    // A route change: a delta removing that route, from v2.
    let mut changed = fewer_of(&config);
    let gone = changed.listeners[0].routes.remove(0);
    let v3 = hub.publish(&key, changed.clone());
    let delta = lines.next_delta(&v3, &v2).await;
    assert_eq!(delta.routes.len(), 1);
    assert_eq!(delta.routes[0].name, gone.name);
    assert!(delta.routes[0].routes.is_empty(), "{delta:?}");
    assert!(delta.backends.is_empty());

    // Nothing changes: a ping arrives.
    assert_eq!(lines.next().await, Update::Ping);

    // Acks are recorded per pod; a bad version is a clear 400.
    let ack = |body: String| {
        hyper::Request::post(format!("http://{addr}/v1/gateways/default/gw/ack"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let ok = client
        .request(ack(format!(
            r#"{{"pod":"p1","version":"{v3}","accepted":true}}"#
        )))
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let acks = hub.acks(&key);
    assert!(acks["p1"].accepted && acks["p1"].version == v3);
    let bad = client
        .request(ack(r#"{"pod":"p1","version":"x","accepted":true}"#.into()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body = bad.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"x\""));

    // Deleting the Gateway ends the stream.
    hub.retain(|_| false);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match lines.body.frame().await {
                None => return,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "stream should end when its Gateway is gone");
}

/// `config` with one endpoint fewer.
fn fewer_of(config: &pylon_config::Config) -> pylon_config::Config {
    let mut fewer = config.clone();
    fewer
        .backends
        .get_mut("default/echo:8080")
        .unwrap()
        .endpoints
        .truncate(1);
    fewer
}

/// A data plane reconnecting with the version it runs gets nothing while that is current, a
/// delta from it when it is recent, and a snapshot when this replica never had it.
#[tokio::test]
async fn streams_resume_from_the_running_version() {
    let snapshot = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
    let key = ObjectKey::new("default", "gw");
    let config = pylon_controller::translate::translate(&snapshot).configs[&key].clone();
    let hub = Arc::new(ConfigHub::default());
    let v1 = hub.publish(&key, config.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(hub.clone(), Duration::from_millis(300), Authenticator::Open);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let connect = |version: &str| {
        let url = format!("http://{addr}/v1/gateways/default/gw/config?pod=p1&version={version}");
        let client = client.clone();
        async move {
            let resp = client.get(url.parse().unwrap()).await.unwrap();
            assert_eq!(resp.status(), 200);
            Lines {
                body: resp.into_body(),
                buf: vec![],
            }
        }
    };

    // Current: nothing to send, only pings.
    let mut current = connect(&v1).await;
    assert_eq!(current.next().await, Update::Ping);

    // One version behind: a delta from it, on both the old stream and a new one.
    let v2 = hub.publish(&key, fewer_of(&config));
    for mut lines in [current, connect(&v1).await] {
        lines.next_delta(&v2, &v1).await;
    }

    // Unknown (another replica's, or forgotten): a snapshot.
    let mut lines = connect("0123456789abcdef.0123456789abcdef").await;
    assert!(matches!(lines.next().await, Update::Snapshot { version, .. } if version == v2));

    // Only the last RECENT versions are kept.
    for n in 0..pylon_controller::config_hub::RECENT {
        let mut c = config.clone();
        c.backends.get_mut("default/echo:8080").unwrap().endpoints =
            vec![pylon_config::Endpoint::ready(
                format!("10.9.9.{n}:80").parse().unwrap(),
            )];
        hub.publish(&key, c);
    }
    assert!(hub.recent(&key, &v1).is_none());
    let mut lines = connect(&v1).await;
    assert!(matches!(lines.next().await, Update::Snapshot { .. }));
}

#[test]
fn versions_are_derived_from_content() {
    let snapshot = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
    let key = ObjectKey::new("default", "gw");
    let config = pylon_controller::translate::translate(&snapshot).configs[&key].clone();

    // Two independent hubs (two replicas) give the same config the same version, whatever
    // they published before.
    let (a, b) = (ConfigHub::default(), ConfigHub::default());
    let mut other = config.clone();
    other.listeners[0].routes.clear();
    a.publish(&key, other.clone());
    let va = a.publish(&key, config.clone());
    let vb = b.publish(&key, config.clone());
    assert_eq!(va, vb);
    assert_ne!(
        va,
        b.publish(&key, other),
        "a route change is a new version"
    );

    // An endpoint-only change: a new version, same structure half (same forms).
    let mut fewer = config.clone();
    fewer
        .backends
        .get_mut("default/echo:8080")
        .unwrap()
        .endpoints
        .truncate(1);
    let ve = a.publish(&key, fewer.clone());
    assert_ne!(ve, va);
    assert_eq!(ve.split_once('.').unwrap().0, va.split_once('.').unwrap().0);
    assert_eq!(b.publish(&key, fewer), ve);
    assert!(a.number(&key, &va).is_some());
    assert_eq!(a.number(&key, &ve), a.number(&key, &va));
    assert!(a.number(&key, "nonsense").is_none());
}
