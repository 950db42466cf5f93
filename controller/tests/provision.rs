//! Golden test of the objects the provisioner applies for a Gateway.

use pylon_controller::model::ObjectKey;
use pylon_controller::provision::{dataplane_name, render::render};
use pylon_controller::snapshot::{Options, Snapshot};

const INPUT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps, uid: 0b0c1d2e-aaaa-bbbb-cccc-000000000001}
spec:
  gatewayClassName: pylon
  infrastructure:
    labels: {team: web}
    annotations: {example.com/note: hi}
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: http-b, port: 80, protocol: HTTP, hostname: b.example.com}
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: tls}]}
"#;

#[test]
fn dataplane_objects() {
    let options = Options {
        controller_name: "pylon.dev/gateway-controller".into(),
        dataplane_image: "ghcr.io/pylon-dev/pylon-dataplane:test".into(),
        config_url: "http://pylon-controller.pylon-system.svc:18000".into(),
    };
    let s = Snapshot::from_yaml(INPUT, options.clone()).unwrap();
    let gw = &s.gateways[&ObjectKey::new("apps", "gw")];
    insta::assert_yaml_snapshot!("dataplane_objects", render(gw, &options));
}

#[test]
fn long_names_stay_valid_and_distinct() {
    let a = dataplane_name(&"a".repeat(100));
    let b = dataplane_name(&format!("{}b", "a".repeat(99)));
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(dataplane_name("gw"), "pylon-gw");
}
