//! Golden tests: every `tests/translate/<case>.yaml` (input objects) is translated and the
//! statuses and configs are compared with the insta snapshot `snapshots/translate__<case>.snap`.
//! One `#[test]` per case, so one mismatch does not hide the others; a case file without its
//! test (or a test without its file) fails `every_case_file_has_its_test`.

use std::path::{Path, PathBuf};

use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::translate;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate")
}

/// Translates one case and compares it with its snapshot.
fn golden(name: &str) {
    let text = std::fs::read_to_string(cases_dir().join(format!("{name}.yaml")))
        .unwrap_or_else(|e| panic!("{name}.yaml: {e}"));
    let snapshot =
        Snapshot::from_yaml(&text, Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let translation = translate(&snapshot);
    assert_eq!(
        translation,
        translate(&snapshot),
        "{name}: translate must be deterministic"
    );
    for (gateway, config) in &translation.configs {
        let problems = pylon_config::validate(config);
        assert!(
            problems.is_empty(),
            "{name}: config of {gateway} is invalid: {problems:?}"
        );
    }
    insta::assert_yaml_snapshot!(name, translation);
}

macro_rules! cases {
    ($($test:ident: $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                golden($file);
            }
        )*
        const CASES: &[&str] = &[$($file),*];
    };
}

cases! {
    attached_routes_count: "attached-routes-count",
    backend_tls_conflict: "backend-tls-conflict",
    backend_tls_policy: "backend-tls-policy",
    basic_http_route: "basic-http-route",
    class_invalid_parameters: "class-invalid-parameters",
    class_other_controller: "class-other-controller",
    class_parameters_not_found: "class-parameters-not-found",
    endpoint_conditions: "endpoint-conditions",
    gateway_address_not_assigned: "gateway-address-not-assigned",
    gateway_backend_client_cert_invalid: "gateway-backend-client-cert-invalid",
    gateway_frontend_client_validation: "gateway-frontend-client-validation",
    gateway_invalid_parameters: "gateway-invalid-parameters",
    gateway_static_addresses: "gateway-static-addresses",
    gateway_unsupported_address: "gateway-unsupported-address",
    grpc_route_basic: "grpc-route-basic",
    grpc_route_unsupported_filter: "grpc-route-unsupported-filter",
    listener_all_invalid: "listener-all-invalid",
    listener_cert_cross_namespace_denied: "listener-cert-cross-namespace-denied",
    listener_cert_cross_namespace_granted: "listener-cert-cross-namespace-granted",
    listener_cert_malformed: "listener-cert-malformed",
    listener_cert_missing_secret: "listener-cert-missing-secret",
    listener_cert_unsupported_kind: "listener-cert-unsupported-kind",
    listener_hostname_conflict: "listener-hostname-conflict",
    listener_https_no_tls: "listener-https-no-tls",
    listener_https_passthrough: "listener-https-passthrough",
    listener_https_valid: "listener-https-valid",
    listener_invalid_route_kinds: "listener-invalid-route-kinds",
    listener_only_invalid_route_kinds: "listener-only-invalid-route-kinds",
    listener_protocol_conflict: "listener-protocol-conflict",
    listener_sets: "listener-sets",
    listener_unsupported_protocol: "listener-unsupported-protocol",
    parameters_autoscaling_disruption_budget: "parameters-autoscaling-disruption-budget",
    parameters_class_and_gateway: "parameters-class-and-gateway",
    route_all_rules_invalid: "route-all-rules-invalid",
    route_allowed_all_namespaces: "route-allowed-all-namespaces",
    route_allowed_namespace_selector: "route-allowed-namespace-selector",
    route_backend_cross_namespace_denied: "route-backend-cross-namespace-denied",
    route_backend_connect_timeout: "route-backend-connect-timeout",
    route_backend_cross_namespace_granted: "route-backend-cross-namespace-granted",
    route_backend_invalid_kind: "route-backend-invalid-kind",
    route_backend_no_port: "route-backend-no-port",
    route_backend_not_found: "route-backend-not-found",
    route_backend_port_not_found: "route-backend-port-not-found",
    route_backend_unsupported_protocol: "route-backend-unsupported-protocol",
    route_cors_retry_timeouts: "route-cors-retry-timeouts",
    route_filters: "route-filters",
    route_hostname_intersection: "route-hostname-intersection",
    route_kind_not_allowed: "route-kind-not-allowed",
    route_no_matching_hostname: "route-no-matching-hostname",
    route_no_matching_parent_port: "route-no-matching-parent-port",
    route_no_matching_parent_section: "route-no-matching-parent-section",
    route_not_allowed_namespace: "route-not-allowed-namespace",
    route_parent_not_ours: "route-parent-not-ours",
    route_partially_invalid: "route-partially-invalid",
    route_rule_rejected_by_data_plane: "route-rule-rejected-by-data-plane",
    route_section_and_port: "route-section-and-port",
    route_weighted_backends_partly_invalid: "route-weighted-backends-partly-invalid",
    tls_listener_modes: "tls-listener-modes",
    tcp_route: "tcp-route",
    tls_route_passthrough: "tls-route-passthrough",
}

#[test]
fn every_case_file_has_its_test() {
    let mut files: Vec<String> = std::fs::read_dir(cases_dir())
        .expect("tests/translate exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "add each case file to `cases!` (and only those)"
    );
}
