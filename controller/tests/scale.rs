//! Translation at scale: 1,000 HTTPRoutes (`SCALE_ROUTES`), each with its Service and
//! EndpointSlice, on one Gateway are all accepted and programmed in one translation; then one
//! route changes and an incremental translation attaches that route alone and equals the full
//! one. The times they take, and that of versioning the config and summarising its forms
//! (what publishing a structure costs), are printed (a measurement, not a timed assertion).
//! Run: `SCALE_ROUTES=5000 cargo test -p pylon-controller --release --test scale -- --nocapture`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use pylon_controller::model::ObjectKey;
use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::incremental::Incremental;
use pylon_controller::translate::reason::{ConditionStatus, ConditionType};
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
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: svc-{i}-a, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 3000}}]\n\
             endpoints: [{{addresses: [10.1.{}.{}]}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r-{i}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [h{i}.example.com]\n  rules:\n\
             \x20 - matches: [{{path: {{value: /p{i}}}, headers: [{{name: x, value: \"{i}\"}}]}}]\n\
             \x20   backendRefs: [{{name: svc-{i}, port: 8080}}]\n",
            i / 250,
            i % 250
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
                .any(|c| c.kind == ConditionType::Accepted && c.status == ConditionStatus::True)
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
    let forms = pylon_controller::serving_status::Forms::of(config);
    let summarised = started.elapsed();
    assert_eq!(forms.routes.len(), routes);
    assert_eq!(structure.len(), 16);

    // One route's backend changes: the incremental engine attaches it alone.
    let mut engine = Incremental::default();
    let s = Arc::new(s);
    engine.translate(&s);
    let mut changed = (*s).clone();
    let key = ObjectKey::new("default", "r-0");
    let mut route = (*changed.http_routes[&key]).clone();
    route.spec.rules[0].backend_refs[0].backend.name = "svc-1".into();
    changed.http_routes.insert(key, Arc::new(route));
    let changed = Arc::new(changed);
    let mut hashes = pylon_controller::version::RouteHashes::default();
    hashes.of(&engine.translate(&s).configs[&ObjectKey::new("default", "gw")]);
    let started = Instant::now();
    let incremental = engine.translate(&changed);
    let one_change = started.elapsed();
    // What publishing the changed config costs with the route hashes of the one before.
    let config = &incremental.configs[&ObjectKey::new("default", "gw")];
    let started = Instant::now();
    let hashed = hashes.of(config);
    let cached = pylon_controller::version::of_hashed(config, &hashed);
    let forms_cached = pylon_controller::serving_status::Forms::of_hashed(config, &hashed);
    let published = started.elapsed();
    assert_eq!(cached, pylon_controller::version::of(config));
    assert_eq!(
        forms_cached,
        pylon_controller::serving_status::Forms::of(config)
    );
    assert_eq!(
        (engine.stats().reused, engine.stats().attached),
        (routes - 1, 1)
    );
    assert_eq!(incremental, translate(&changed));
    println!(
        "translate: {routes} routes in {elapsed:?}; one route changed, incrementally: \
         {one_change:?}; version::of {versioned:?}, Forms::of {summarised:?}; both with the \
         route hashes of the config before: {published:?}"
    );
}
