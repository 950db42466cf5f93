//! Incremental translation equals the full one: random sequences of creates, updates and
//! deletes over a small world of every kind route attachments read (Gateways and their
//! listeners, Namespaces and their labels, Services, EndpointSlices, ReferenceGrants,
//! BackendTLSPolicies and their ConfigMaps, HTTPRoutes and GRPCRoutes), each step's snapshot
//! translated by one long-lived [`Incremental`] and by the pure `translate`; the two must be
//! equal at every step. Objects that did not change keep their `Arc` from one snapshot to the
//! next, as the watcher keeps them, so the incremental side really reuses attachments (the
//! test checks it did, and that it also recomputed some).
//!
//! Seeds: `INCREMENTAL_SEED` replays one; otherwise a few fixed ones run.

use std::sync::Arc;

use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::incremental::{Incremental, Stats};
use pylon_controller::translate::translate;

const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUW38ylpX1Zh2yp5dlzWtjV7zkToQwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wIBcNMjYxMTIyMjExMTUzWhgPMjEyNjEw
MjkyMTExNTNaMBYxFDASBgNVBAMMC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEdKaeS40LKS1nOnbbbNkNFmJ3QmFobyc/gdnk7yf+v/iQ1sAn
dWAspLvnBbqbOKyg45Qemk4DpHnF0rpxrLMiA6NTMFEwHQYDVR0OBBYEFPm9/QG7
/i88ZWBryhiqTLzBox5vMB8GA1UdIwQYMBaAFPm9/QG7/i88ZWBryhiqTLzBox5v
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAN0OWGZCoHy7mHH0
x6yYYBWnSTeYBXbRV14zlZvaClcaAiBP0sKs73wAnGwt4/7orNhCtKWmCwH7yGwI
rbRPWOkbyg==
-----END CERTIFICATE-----";

const GW: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n";
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n";
const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n";
const SVC: &str = "apiVersion: v1\nkind: Service\n";

/// An object slot: the YAML of each form it can take (it can also be absent).
struct Slot {
    forms: Vec<String>,
    /// Namespaces are merged as such; other pieces' implicit namespaces are not.
    namespace: bool,
    /// What listeners are made of changes less often than routes and Services do (and each
    /// such change makes every route be attached again).
    rare: bool,
}

fn slot(forms: Vec<String>) -> Slot {
    Slot {
        forms,
        namespace: false,
        rare: false,
    }
}

fn rare(forms: Vec<String>) -> Slot {
    Slot {
        rare: true,
        ..slot(forms)
    }
}

fn gateway(ns: &str, name: &str, listeners: &str) -> String {
    format!(
        "{GW}metadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  gatewayClassName: pylon\n  listeners: {listeners}\n"
    )
}

fn service(ns: &str, name: &str, ports: &str) -> String {
    format!("{SVC}metadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: {ports}}}\n")
}

fn http_route(name: &str, spec: &str) -> String {
    format!("{ROUTE}metadata: {{name: {name}, namespace: default}}\nspec:\n{spec}")
}

fn world() -> Vec<Slot> {
    let mut slots = vec![
        rare(vec![
            gateway("default", "gw-a", "[{name: http, port: 80, protocol: HTTP}]"),
            gateway(
                "default",
                "gw-a",
                "[{name: http, port: 80, protocol: HTTP, hostname: \"*.a.example.com\"}, \
                 {name: other, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]",
            ),
            gateway(
                "default",
                "gw-a",
                "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: web}}}}}]",
            ),
        ]),
        rare(vec![
            gateway(
                "other",
                "gw-b",
                "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]",
            ),
            gateway(
                "other",
                "gw-b",
                "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}, kinds: [{kind: GRPCRoute}]}}]",
            ),
        ]),
        Slot {
            forms: vec![
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n".into(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {team: web}}\n"
                    .into(),
            ],
            namespace: true,
            rare: true,
        },
        slot(vec![
            "apiVersion: v1\nkind: Service\nmetadata: {name: pylon-gw-a, namespace: default}\n\
             spec: {type: LoadBalancer, ports: [{name: http, port: 80}]}\n\
             status: {loadBalancer: {ingress: [{ip: 10.0.0.10}]}}\n"
                .into(),
        ]),
        rare(vec![
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
             metadata: {name: grant, namespace: other}\n\
             spec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]\n\
             \x20 to: [{group: \"\", kind: Service}]\n"
                .into(),
        ]),
        rare(vec![
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: default}}\n\
                 data: {{ca.crt: {CA:?}}}\n"
            ),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: default}\n\
             data: {ca.crt: hello}\n"
                .into(),
        ]),
        slot(vec![
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n\
             metadata: {name: tls, namespace: default}\n\
             spec:\n  targetRefs: [{group: \"\", kind: Service, name: svc-1}]\n\
             \x20 validation: {caCertificateRefs: [{group: \"\", kind: ConfigMap, name: ca}], hostname: b.example.com}\n"
                .into(),
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n\
             metadata: {name: tls, namespace: default}\n\
             spec:\n  targetRefs: [{group: \"\", kind: Service, name: svc-1}]\n\
             \x20 validation: {wellKnownCACertificates: System, hostname: b.example.com}\n"
                .into(),
        ]),
        slot(vec![
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {name: svc-0-a, namespace: default, labels: {kubernetes.io/service-name: svc-0}}\n\
             addressType: IPv4\nports: [{name: http, port: 3000}]\nendpoints: [{addresses: [10.1.0.1]}]\n"
                .into(),
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {name: svc-0-a, namespace: default, labels: {kubernetes.io/service-name: svc-0}}\n\
             addressType: IPv4\nports: [{name: http, port: 3000}]\n\
             endpoints: [{addresses: [10.1.0.2]}, {addresses: [10.1.0.3], conditions: {ready: false}}]\n"
                .into(),
        ]),
        slot(vec![service(
            "other",
            "svc-x",
            "[{name: http, port: 8080}]",
        )]),
    ];
    for name in ["svc-0", "svc-1"] {
        slots.push(slot(vec![
            service("default", name, "[{name: http, port: 8080}]"),
            service(
                "default",
                name,
                "[{name: http, port: 8080, appProtocol: kubernetes.io/h2c}]",
            ),
            service("default", name, "[{name: http, port: 9090}]"),
        ]));
    }
    for i in 0..6 {
        let name = format!("r-{i}");
        slots.push(slot(vec![
            http_route(
                &name,
                "  parentRefs: [{name: gw-a}]\n  rules: [{backendRefs: [{name: svc-0, port: 8080}]}]\n",
            ),
            http_route(
                &name,
                &format!(
                    "  parentRefs: [{{name: gw-a}}, {{name: gw-b, namespace: other}}]\n\
                     \x20 hostnames: [x{i}.a.example.com]\n  rules:\n\
                     \x20 - matches: [{{path: {{value: /p{i}}}}}]\n\
                     \x20   filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: svc-0, port: 8080}}}}}}]\n\
                     \x20   backendRefs: [{{name: svc-1, port: 8080}}]\n"
                ),
            ),
            http_route(
                &name,
                "  parentRefs: [{name: gw-a, sectionName: other}]\n\
                 \x20 rules: [{backendRefs: [{name: svc-x, namespace: other, port: 8080}]}]\n",
            ),
            http_route(
                &name,
                "  parentRefs: [{name: gw-a}]\n  rules:\n\
                 \x20 - backendRefs: [{name: svc-0, port: 9090}, {name: missing, port: 8080}]\n\
                 \x20 - matches: [{path: {value: /ext}}]\n\
                 \x20   filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Foo, name: f}}]\n",
            ),
            http_route(
                &name,
                "  parentRefs: [{name: gw-b, namespace: other}]\n  hostnames: [b.example.com]\n\
                 \x20 rules: [{backendRefs: [{name: svc-1, port: 9090, weight: 3}, {name: svc-0, port: 8080}]}]\n",
            ),
        ]));
    }
    slots.push(slot(vec![
        format!(
            "{GRPC}metadata: {{name: g-0, namespace: default}}\n\
             spec:\n  parentRefs: [{{name: gw-a}}]\n  rules: [{{backendRefs: [{{name: svc-0, port: 8080}}]}}]\n"
        ),
        format!(
            "{GRPC}metadata: {{name: g-0, namespace: default}}\n\
             spec:\n  parentRefs: [{{name: gw-b, namespace: other}}]\n  rules: [{{backendRefs: [{{name: svc-1, port: 8080}}]}}]\n"
        ),
    ]));
    slots
}

/// Copies `piece`'s objects into `into` (Arcs shared, as the watcher's model shares them).
fn merge(into: &mut Snapshot, piece: &Snapshot, namespace: bool) {
    fn copy<K: Ord + Clone, V>(
        into: &mut std::collections::BTreeMap<K, Arc<V>>,
        from: &std::collections::BTreeMap<K, Arc<V>>,
    ) {
        into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if namespace {
        copy(&mut into.namespaces, &piece.namespaces);
        return;
    }
    copy(&mut into.gateway_classes, &piece.gateway_classes);
    copy(&mut into.gateways, &piece.gateways);
    copy(&mut into.listener_sets, &piece.listener_sets);
    copy(&mut into.http_routes, &piece.http_routes);
    copy(&mut into.grpc_routes, &piece.grpc_routes);
    copy(&mut into.reference_grants, &piece.reference_grants);
    copy(&mut into.services, &piece.services);
    copy(&mut into.endpoint_slices, &piece.endpoint_slices);
    copy(&mut into.secrets, &piece.secrets);
    copy(&mut into.backend_tls_policies, &piece.backend_tls_policies);
    copy(&mut into.config_maps, &piece.config_maps);
    copy(&mut into.parameters, &piece.parameters);
}

fn run(seed: u64, steps: usize) -> Stats {
    let slots = world();
    let parse = |yaml: &str| Snapshot::from_yaml(yaml, Options::default()).expect(yaml);
    // Each form parsed once: choosing it again gives the same objects.
    let pieces: Vec<Vec<Snapshot>> = slots
        .iter()
        .map(|s| s.forms.iter().map(|f| parse(f)).collect())
        .collect();
    let class = parse(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: pylon}\n\
         spec: {controllerName: pylon.dev/gateway-controller}\n",
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    // Everything present in its first form to begin with.
    let mut chosen: Vec<Option<usize>> = vec![Some(0); slots.len()];
    let mut inc = Incremental::default();
    let mut total = Stats::default();
    for step in 0..steps {
        if step > 0 {
            // One to three objects created, changed or deleted at once.
            for _ in 0..rng.usize(1..=3) {
                let i = loop {
                    let i = rng.usize(..slots.len());
                    if !slots[i].rare || rng.u8(..4) == 0 {
                        break i;
                    }
                };
                let n = slots[i].forms.len();
                let pick = rng.usize(..=n);
                chosen[i] = (pick < n).then_some(pick);
            }
        }
        let mut s = Snapshot::default();
        merge(&mut s, &class, false);
        for (i, c) in chosen.iter().enumerate() {
            if let Some(form) = c {
                merge(&mut s, &pieces[i][*form], slots[i].namespace);
            }
        }
        let s = Arc::new(s);
        let incremental = inc.translate(&s);
        let full = translate(&s);
        assert_eq!(
            incremental, full,
            "seed {seed}, step {step}: incremental translation differs (forms {chosen:?})"
        );
        let stats = inc.stats();
        assert_eq!(
            stats.reused + stats.attached,
            s.http_routes.len() + s.grpc_routes.len(),
            "seed {seed}, step {step}: every route is reused or attached"
        );
        total.reused += stats.reused;
        total.attached += stats.attached;
        total.resolved += stats.resolved;
    }
    total
}

#[test]
fn incremental_translation_equals_full_translation_at_every_step() {
    let seeds: Vec<u64> = match std::env::var("INCREMENTAL_SEED") {
        Ok(v) => vec![v.parse().expect("INCREMENTAL_SEED is a number")],
        Err(_) => vec![1, 2, 3, 4, 5, 6, 7, 8],
    };
    for seed in seeds {
        let total = run(seed, 300);
        // Not vacuous: attachments were kept, and changes made some be computed again.
        assert!(total.reused > total.attached, "seed {seed}: {total:?}");
        assert!(total.attached > 7, "seed {seed}: {total:?}");
        println!("seed {seed}: {total:?}");
    }
}

/// A translation after nothing changed reuses every route; after one route changed, that
/// route alone is attached again; after a Gateway changed, every route is.
#[test]
fn only_what_a_change_reaches_is_attached_again() {
    let slots = world();
    let parse = |yaml: &str| Snapshot::from_yaml(yaml, Options::default()).unwrap();
    let mut s = parse(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: pylon}\n\
         spec: {controllerName: pylon.dev/gateway-controller}\n",
    );
    for slot in &slots {
        merge(&mut s, &parse(&slot.forms[0]), slot.namespace);
    }
    let routes = s.http_routes.len() + s.grpc_routes.len();
    let mut inc = Incremental::default();
    let s = Arc::new(s);
    inc.translate(&s);
    assert_eq!(inc.stats().attached, routes);
    inc.translate(&Arc::new((*s).clone()));
    assert_eq!((inc.stats().reused, inc.stats().attached), (routes, 0));
    assert_eq!(inc.stats().resolved, 0, "no endpoints resolved again");

    // svc-0's EndpointSlice changes: its one backend is resolved again, no route attached.
    let mut slice = (*s).clone();
    merge(&mut slice, &parse(&slots[7].forms[1]), false);
    assert!(slots[7].forms[1].contains("kind: EndpointSlice"));
    let slice = Arc::new(slice);
    assert_eq!(inc.translate(&slice), translate(&slice));
    assert_eq!(inc.stats().resolved, 1);
    assert_eq!((inc.stats().reused, inc.stats().attached), (routes, 0));
    let s = slice;

    let mut one = (*s).clone();
    merge(
        &mut one,
        &parse(&http_route("r-3", "  parentRefs: [{name: gw-a}]\n")),
        false,
    );
    let one = Arc::new(one);
    assert_eq!(
        *inc.translate(&one).http_routes.values().next().unwrap(),
        translate(&one)
            .http_routes
            .values()
            .next()
            .cloned()
            .unwrap()
    );
    assert_eq!((inc.stats().reused, inc.stats().attached), (routes - 1, 1));

    // svc-1 is named by no route in these forms: nothing to attach again.
    let mut svc = (*one).clone();
    merge(
        &mut svc,
        &parse(&service("default", "svc-1", "[{name: http, port: 9090}]")),
        false,
    );
    let svc = Arc::new(svc);
    assert_eq!(inc.translate(&svc), translate(&svc));
    assert_eq!((inc.stats().reused, inc.stats().attached), (routes, 0));
    // svc-0 is named by the five other routes and the GRPCRoute.
    let mut svc0 = (*svc).clone();
    merge(
        &mut svc0,
        &parse(&service("default", "svc-0", "[{name: http, port: 9090}]")),
        false,
    );
    let svc0 = Arc::new(svc0);
    assert_eq!(inc.translate(&svc0), translate(&svc0));
    assert_eq!((inc.stats().reused, inc.stats().attached), (1, routes - 1));

    let mut gw = (*svc0).clone();
    merge(&mut gw, &parse(&slots[0].forms[1]), false);
    let gw = Arc::new(gw);
    assert_eq!(inc.translate(&gw), translate(&gw));
    assert_eq!((inc.stats().reused, inc.stats().attached), (0, routes));
}
