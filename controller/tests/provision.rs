//! Golden test of the objects the provisioner applies for a Gateway.

use pylon_controller::model::ObjectKey;
use pylon_controller::naming::dataplane_name;
use pylon_controller::provision::render::render;
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
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: dns, port: 53, protocol: UDP}
"#;

#[test]
fn dataplane_objects() {
    let options = Options {
        controller_name: "pylon.dev/gateway-controller".into(),
        dataplane_image: "ghcr.io/pylon-dev/pylon-dataplane:test".into(),
        config_url: "http://pylon-controller.pylon-system.svc:18000".into(),
        config_ca: None,
    };
    let s = Snapshot::from_yaml(INPUT, options.clone()).unwrap();
    let gw = &s.gateways[&ObjectKey::new("apps", "gw")];
    let defaults = Default::default();
    insta::assert_yaml_snapshot!("dataplane_objects", render(gw, &options, &defaults));
}

#[test]
fn parameters_shape_the_data_plane() {
    let input = format!(
        "{INPUT}\n---\n{}",
        r#"
apiVersion: pylon.dev/v1alpha1
kind: GatewayParameters
metadata: {name: big, namespace: apps}
spec:
  replicas: 3
  serviceType: NodePort
  image: registry.example.com/dp:1
  resources: {requests: {cpu: 100m}, limits: {memory: 128Mi}}
  labels: {tier: edge}
"#
    )
    .replace(
        "  infrastructure:\n",
        "  infrastructure:\n    parametersRef: {group: pylon.dev, kind: GatewayParameters, name: big}\n",
    );
    let class = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: pylon}\nspec: {controllerName: pylon.dev/gateway-controller}\n---\n";
    let s = Snapshot::from_yaml(&format!("{class}{input}"), Options::default()).unwrap();
    let t = pylon_controller::translate::translate(&s);
    let key = ObjectKey::new("apps", "gw");
    let params = &t.parameters[&key];
    let objects = render(&s.gateways[&key], &s.options, params);
    let deployment = objects.deployment.spec.unwrap();
    assert_eq!(deployment.replicas, Some(3));
    let container = &deployment.template.spec.unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/dp:1")
    );
    let resources = container.resources.clone().unwrap();
    assert_eq!(resources.requests.unwrap()["cpu"].0, "100m");
    assert_eq!(resources.limits.unwrap()["memory"].0, "128Mi");
    assert_eq!(
        objects.service.spec.unwrap().type_.as_deref(),
        Some("NodePort")
    );
    assert_eq!(objects.service.metadata.labels.unwrap()["tier"], "edge");
}

/// The controller's default mode: TLS with the config CA handed to the data plane in a
/// ConfigMap; with `autoscaling` and `podDisruptionBudget`, an HPA and a PDB, and a Deployment
/// without `replicas` (the HPA owns it).
#[test]
fn dataplane_objects_tls_autoscaled() {
    let options = Options {
        controller_name: "pylon.dev/gateway-controller".into(),
        dataplane_image: "ghcr.io/pylon-dev/pylon-dataplane:test".into(),
        config_url: "https://pylon-controller.pylon-system.svc:18000".into(),
        config_ca: Some(TEST_CA.into()),
    };
    let input = format!("{INPUT}\n---\n{SCALED}").replace(
        "  infrastructure:\n",
        "  infrastructure:\n    parametersRef: {group: pylon.dev, kind: GatewayParameters, name: scaled}\n",
    );
    let class = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: pylon}\nspec: {controllerName: pylon.dev/gateway-controller}\n---\n";
    let s = Snapshot::from_yaml(&format!("{class}{input}"), options.clone()).unwrap();
    let t = pylon_controller::translate::translate(&s);
    let key = ObjectKey::new("apps", "gw");
    let objects = render(&s.gateways[&key], &options, &t.parameters[&key]);
    assert_eq!(objects.deployment.spec.as_ref().unwrap().replicas, None);
    insta::assert_yaml_snapshot!("dataplane_objects_tls_autoscaled", objects);
}

/// Taking `autoscaling` and `podDisruptionBudget` out of the parameters takes the HPA and PDB
/// out of the render (the provisioner then deletes them) and gives `replicas` back.
#[test]
fn removing_the_settings_removes_the_objects() {
    let scaled = Snapshot::from_yaml(SCALED, Options::default()).unwrap();
    let mut params = (*scaled.parameters[&ObjectKey::new("apps", "scaled")]).clone();
    let s = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
    let gw = &s.gateways[&ObjectKey::new("apps", "gw")];
    let with = render(gw, &s.options, &params);
    assert!(with.autoscaler.is_some() && with.disruption_budget.is_some());
    params.autoscaling = None;
    params.pod_disruption_budget = None;
    let without = render(gw, &s.options, &params);
    assert!(without.autoscaler.is_none() && without.disruption_budget.is_none());
    assert_eq!(without.deployment.spec.unwrap().replicas, Some(1));
    assert!(without.config_ca.is_none(), "no CA in plaintext mode");
}

const SCALED: &str = r#"
apiVersion: pylon.dev/v1alpha1
kind: GatewayParameters
metadata: {name: scaled, namespace: apps}
spec:
  resources: {requests: {cpu: 250m}}
  autoscaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 70}
  podDisruptionBudget: {maxUnavailable: "25%"}
"#;

/// Stands in for the CA certificate: rendering copies it, never parses it.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB...test...\n-----END CERTIFICATE-----\n";

#[test]
fn gateway_parameters_crd() {
    use kube::CustomResourceExt;
    insta::assert_yaml_snapshot!(
        "gateway_parameters_crd",
        pylon_controller::model::params::GatewayParameters::crd()
    );
}

#[test]
fn long_names_stay_valid_and_distinct() {
    let a = dataplane_name(&"a".repeat(100));
    let b = dataplane_name(&format!("{}b", "a".repeat(99)));
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(dataplane_name("gw"), "pylon-gw");
}

#[test]
fn a_static_address_is_asked_of_the_load_balancer() {
    let input = |addresses: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: apps}}
spec:
  gatewayClassName: pylon
  addresses: {addresses}
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
"
        )
    };
    let lb_ip = |addresses: &str| {
        let s = Snapshot::from_yaml(&input(addresses), Options::default()).unwrap();
        let gw = &s.gateways[&ObjectKey::new("apps", "gw")];
        render(gw, &Options::default(), &Default::default())
            .service
            .spec
            .unwrap()
            .load_balancer_ip
    };
    assert_eq!(
        lb_ip("[{value: 10.245.0.250}]").as_deref(),
        Some("10.245.0.250")
    );
    // No value, or several values (not Programmed; the Service cannot hold them): none asked.
    assert_eq!(lb_ip("[{type: IPAddress}]"), None);
    assert_eq!(lb_ip("[{value: 192.0.2.1}, {value: 10.245.0.250}]"), None);
    assert_eq!(lb_ip("[]"), None);
}
