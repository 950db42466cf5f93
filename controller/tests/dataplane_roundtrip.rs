//! The real data-plane client (`pylon_dataplane::client`) against the real config server on
//! loopback, over TLS with a controller-issued CA as in a cluster: every golden case's config is
//! streamed, applied (route table built, certificates parsed) and acked as accepted — the
//! controller's output is what the data plane takes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pylon_controller::auth::Authenticator;
use pylon_controller::config_hub::ConfigHub;
use pylon_controller::config_server::router;
use pylon_controller::model::ObjectKey;
use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::translate;

async fn wait_for_ack(hub: &ConfigHub, key: &ObjectKey, version: &str, case: &str) {
    for _ in 0..500 {
        if let Some(a) = hub.acks(key).get("roundtrip")
            && a.version == version
        {
            assert!(
                a.accepted,
                "{case}: data plane rejected version {version}: {:?}",
                a.error
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{case}: no ack for version {version} within 5 s");
}

#[tokio::test]
async fn data_plane_accepts_every_golden_config() {
    let hub = Arc::new(ConfigHub::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = router(hub.clone(), Duration::from_secs(15), Authenticator::Open);
    let ca = pylon_controller::config_ca::ConfigCa::generate().unwrap();
    let key = pylon_controller::config_tls::ServingKey::issue(&ca, &["localhost".into()]).unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(pylon_controller::config_tls::serve(
        listener,
        app,
        key.server_config(),
        stop,
    ));

    let key = ObjectKey::new("default", "gw");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    let mut published = 0;
    let shared = pylon_dataplane::state::Shared::new();
    let client = pylon_dataplane::client::ControllerClient::new(
        &format!("https://localhost:{port}"),
        &pylon_dataplane::client::Transport::Tls {
            ca_pem: ca.cert_pem.clone(),
        },
        "default/gw",
        "roundtrip",
        None,
        shared.clone(),
    )
    .unwrap();
    tokio::spawn(client.run());
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let s = Snapshot::from_yaml(&std::fs::read_to_string(&case).unwrap(), Options::default())
            .unwrap();
        let Some(config) = translate(&s).configs.remove(&key) else {
            continue;
        };
        let version = hub.publish(&key, config);
        wait_for_ack(&hub, &key, &version, &name).await;
        published += 1;
    }
    assert!(
        published > 20,
        "expected most golden cases to have default/gw, got {published}"
    );
    assert!(shared.ready(), "the data plane holds a route table");
}
