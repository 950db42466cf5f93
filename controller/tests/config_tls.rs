//! The config server over TLS on loopback, with a CA issued the way the controller issues it,
//! against the real data-plane client: the right CA gets config (over h2 when offered), a wrong
//! CA or plain HTTP gets nothing, and with data-plane authentication on (the controller's
//! default) a stream without a token is refused.

use std::sync::Arc;
use std::time::Duration;

use pylon_controller::auth::Authenticator;
use pylon_controller::config_ca::ConfigCa;
use pylon_controller::config_hub::ConfigHub;
use pylon_controller::config_server::router;
use pylon_controller::config_tls::{self, ServingKey};
use pylon_controller::model::ObjectKey;
use pylon_controller::snapshot::{Options, Snapshot};
use pylon_dataplane::client::{ControllerClient, Transport};
use pylon_dataplane::state::Shared;
use tokio::sync::watch;

const INPUT: &str = include_str!("translate/basic-http-route.yaml");

/// A TLS config server on 127.0.0.1 whose certificate names `localhost`; returns its port.
async fn start(
    hub: Arc<ConfigHub>,
    ca: &ConfigCa,
    auth: Authenticator,
) -> (u16, watch::Sender<bool>) {
    let key = ServingKey::issue(ca, &["localhost".into()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop) = watch::channel(false);
    let app = router(hub, Duration::from_secs(15), auth);
    tokio::spawn(config_tls::serve(listener, app, key.server_config(), stop));
    (port, stop_tx)
}

fn published_hub() -> (Arc<ConfigHub>, ObjectKey, String) {
    let snapshot = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
    let key = ObjectKey::new("default", "gw");
    let config = pylon_controller::translate::translate(&snapshot).configs[&key].clone();
    let hub = Arc::new(ConfigHub::default());
    let version = hub.publish(&key, config);
    (hub, key, version)
}

fn data_plane(port: u16, transport: &Transport, pod: &str) -> Arc<Shared> {
    let shared = Shared::new();
    let client = ControllerClient::new(
        &format!("https://localhost:{port}"),
        transport,
        "default/gw",
        pod,
        None,
        shared.clone(),
    )
    .unwrap();
    tokio::spawn(client.run());
    shared
}

async fn acked(hub: &ConfigHub, key: &ObjectKey, pod: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if hub.acks(key).contains_key(pod) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn data_plane_with_the_right_ca_gets_config_and_a_wrong_ca_does_not() {
    let (hub, key, version) = published_hub();
    let ca = ConfigCa::generate().unwrap();
    let (port, _stop) = start(hub.clone(), &ca, Authenticator::Open).await;

    let right = Transport::Tls {
        ca_pem: ca.cert_pem.clone(),
    };
    let shared = data_plane(port, &right, "right");
    assert!(
        acked(&hub, &key, "right", Duration::from_secs(10)).await,
        "the data plane trusting the CA gets its config"
    );
    assert_eq!(hub.acks(&key)["right"].version, version);
    assert!(hub.acks(&key)["right"].accepted);
    assert!(shared.ready());

    // Another CA (e.g. a data plane provisioned for a different controller): the handshake
    // fails, so it never sees a config.
    let other = ConfigCa::generate().unwrap();
    let wrong = Transport::Tls {
        ca_pem: other.cert_pem.clone(),
    };
    let shared = data_plane(port, &wrong, "wrong");
    assert!(!acked(&hub, &key, "wrong", Duration::from_millis(1500)).await);
    assert!(!shared.ready());

    // The same refusal, seen directly: the certificate does not verify.
    let err = handshake(port, &other.cert_pem, b"h2").await.unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn offers_h2_by_alpn_and_refuses_plain_http() {
    let (hub, _, _) = published_hub();
    let ca = ConfigCa::generate().unwrap();
    let (port, _stop) = start(hub, &ca, Authenticator::Open).await;
    let alpn = handshake(port, &ca.cert_pem, b"h2").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let alpn = handshake(port, &ca.cert_pem, b"http/1.1").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    // A plaintext request to the TLS port gets no HTTP answer.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let url = format!("http://127.0.0.1:{port}/v1/gateways/default/gw/config?pod=p");
    let r = tokio::time::timeout(Duration::from_secs(5), client.get(url.parse().unwrap())).await;
    assert!(
        !matches!(r, Ok(Ok(ref resp)) if resp.status().is_success()),
        "plain HTTP must not get a config"
    );
}

#[tokio::test]
async fn with_authentication_on_a_stream_without_a_token_is_refused() {
    let (hub, _, _) = published_hub();
    let ca = ConfigCa::generate().unwrap();
    // Data-plane authentication as the controller runs by default; no API server is needed
    // to refuse a request that carries no token at all.
    let kube =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let (port, _stop) = start(hub, &ca, Authenticator::token_review(kube)).await;

    let tls = pylon_dataplane::tls::ca_client_config(&ca.cert_pem).unwrap();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
    let url = format!("https://localhost:{port}/v1/gateways/default/gw/config?pod=p");
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}

/// A TLS handshake offering one ALPN protocol; the protocol the server chose.
async fn handshake(
    port: u16,
    ca_pem: &str,
    alpn: &[u8],
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let mut cfg = pylon_dataplane::tls::ca_client_config(ca_pem).unwrap();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await?;
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}
