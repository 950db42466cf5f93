//! Translation at scale: 1,000 HTTPRoutes (`SCALE_ROUTES`) on one Gateway are all accepted and
//! programmed in one translation; the time it takes, and that of versioning the config and
//! summarising its forms (what publishing a structure costs), is printed (a measurement, not a
//! timed assertion).
//! Run: `SCALE_ROUTES=5000 cargo test -p pylon-controller --release --test scale -- --nocapture`.

use std::fmt::Write as _;
use std::time::Instant;

use pylon_controller::model::ObjectKey;
use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::translate;

#[test]
fn thousand_routes() {
    let routes: usize = std::env::var("SCALE_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: pylon}\n\
         spec: {controllerName: pylon.dev/gateway-controller}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
         spec:\n  gatewayClassName: pylon\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n",
    );
    for i in 0..routes {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}}}\n\
             spec: {{ports: [{{name: http, port: 8080}}]}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r-{i}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [h{i}.example.com]\n  rules:\n\
             \x20 - matches: [{{path: {{value: /p{i}}}, headers: [{{name: x, value: \"{i}\"}}]}}]\n\
             \x20   backendRefs: [{{name: svc-{i}, port: 8080}}]\n"
        );
    }
    let s = Snapshot::from_yaml(&yaml, Options::default()).unwrap();
    let started = Instant::now();
    let t = translate(&s);
    let elapsed = started.elapsed();
    let accepted = t
        .http_routes
        .values()
        .filter(|p| {
            p[0].conditions
                .iter()
                .any(|c| c.kind == "Accepted" && c.status == "True")
        })
        .count();
    assert_eq!(accepted, routes);
    let config = &t.configs[&ObjectKey::new("default", "gw")];
    assert_eq!(config.listeners[0].routes.len(), routes);
    assert_eq!(
        t.gateways[&ObjectKey::new("default", "gw")].listeners[0].attached_routes,
        routes as i32
    );
    let started = Instant::now();
    let (structure, _) = pylon_controller::version::of(config);
    let versioned = started.elapsed();
    let started = Instant::now();
    let forms = pylon_controller::honest::Forms::of(config);
    let summarised = started.elapsed();
    assert_eq!(forms.routes.len(), routes);
    assert_eq!(structure.len(), 16);
    println!(
        "translate: {routes} routes in {elapsed:?}; version::of {versioned:?}, Forms::of {summarised:?}"
    );
}
