//! A table updated by a delta is the table built from the new config, and shares what the
//! delta did not touch.

use super::*;
use pylon_config::delta::{self, random};

/// Everything a table answers with, in lookup order: per port, per listener, per host group,
/// the entries (precedence, matcher, compiled rule with its backends and their endpoints) and
/// the first-segment index.
fn shape(t: &RouteTable) -> Vec<String> {
    let group = |out: &mut Vec<String>, key: String, g: &HostGroup| {
        out.push(format!("  group {key}"));
        out.extend(g.entries.iter().map(|e| format!("    {e:?}")));
        let mut segments: Vec<_> = g.by_segment.iter().collect();
        segments.sort();
        out.push(format!(
            "    segments {segments:?} unsegmented {:?}",
            g.unsegmented
        ));
    };
    let mut out = vec![];
    for (port, pt) in &t.ports {
        out.push(format!("port {port} {:?}", pt.protocol));
        for l in &pt.listeners {
            out.push(format!(
                " listener {} {:?} terminates {}",
                l.name,
                l.hostname,
                l.terminate.is_some()
            ));
            let mut exact: Vec<_> = l.exact.iter().collect();
            exact.sort_by(|a, b| a.0.cmp(b.0));
            for (h, g) in exact {
                group(&mut out, h.clone(), g);
            }
            for (h, g) in &l.wildcard {
                group(&mut out, h.clone(), g);
            }
            group(&mut out, "(any)".into(), &l.any);
        }
    }
    let mut backends: Vec<_> = t
        .backends
        .iter()
        .map(|(k, b)| format!("{k} {b:?}"))
        .collect();
    backends.sort();
    out.extend(backends);
    out
}

fn build(c: &Config) -> RouteTable {
    RouteTable::build("v".into(), Arc::new(c.clone()), &Clients::new()).expect("valid config")
}

#[test]
fn an_updated_table_is_the_table_of_the_new_config() {
    let mut compared = 0;
    for seed in 0..2000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Half unrelated configs, half one small step apart (a backend's endpoints, a route).
        let old = random::config(&mut rng);
        let new = if seed % 2 == 0 {
            random::config(&mut rng)
        } else {
            random::step(&mut rng, &old)
        };
        if !pylon_config::validate(&old).is_empty() || !pylon_config::validate(&new).is_empty() {
            continue;
        }
        compared += 1;
        let before = build(&old);
        let (config, touched) = delta::apply(&old, &delta::diff(&old, &new).unwrap()).unwrap();
        let updated = before
            .update("v".into(), Arc::new(config), &touched, &Clients::new())
            .unwrap();
        assert_eq!(shape(&updated), shape(&build(&new)), "seed {seed}");
    }
    assert!(compared > 200, "only {compared} valid pairs");
}

/// One route's change on a listener of many hostnames rebuilds that route's group alone.
#[test]
fn a_route_change_rebuilds_only_its_host_group() {
    let route = |i: usize, backend: &str| {
        serde_json::json!({"kind": "HTTPRoute", "namespace": "ns", "name": format!("r{i}"),
            "creationTimestamp": "2024-01-01T00:00:00Z", "hostnames": [format!("h{i}.example")],
            "rules": [{"backendRefs": [{"type": "Backend", "name": backend}]}]})
    };
    let config = |changed: &str| -> Config {
        let routes: Vec<_> = (0..200)
            .map(|i| route(i, if i == 7 { changed } else { "a" }))
            .collect();
        let eps = serde_json::json!({"endpoints": [{"address": "10.0.0.1:80"}]});
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pylon.dev/dataplane/v1",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "routes": routes},
                          {"name": "other", "port": 81, "protocol": "HTTP", "routes": [route(0, "a")]}],
            "backends": {"a": eps, "b": eps}}))
        .unwrap()
    };
    let (old, new) = (config("a"), config("b"));
    let before = build(&old);
    let d = delta::diff(&old, &new).unwrap();
    assert_eq!(d.routes.len(), 1, "{d:?}");
    let (c, touched) = delta::apply(&old, &d).unwrap();
    let after = before
        .update("v2".into(), Arc::new(c), &touched, &Clients::new())
        .unwrap();
    let listener = |t: &RouteTable, port: u16| t.ports[&port].listeners[0].clone();
    let (l0, l1) = (listener(&before, 80), listener(&after, 80));
    for (h, g) in &l0.exact {
        assert_eq!(Arc::ptr_eq(g, &l1.exact[h]), h != "h7.example", "{h}");
    }
    assert!(Arc::ptr_eq(&listener(&before, 81), &listener(&after, 81)));
    assert!(Arc::ptr_eq(&before.backends["a"], &after.backends["a"]));
    assert_eq!(shape(&after), shape(&build(&new)));
}

/// A backend's new endpoints reach every rule that refers to it, and only those are rebuilt.
#[test]
fn a_backend_change_rebuilds_the_groups_that_use_it() {
    let config = |b_endpoint: &str| -> Config {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pylon.dev/dataplane/v1",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "routes": [
                {"kind": "HTTPRoute", "namespace": "ns", "name": "uses-a", "hostnames": ["a.example"],
                 "creationTimestamp": "2024-01-01T00:00:00Z",
                 "rules": [{"backendRefs": [{"type": "Backend", "name": "a"}]}]},
                {"kind": "HTTPRoute", "namespace": "ns", "name": "mirrors-b", "hostnames": ["b.example"],
                 "creationTimestamp": "2024-01-01T00:00:00Z",
                 "rules": [{"filters": [{"type": "RequestMirror", "backend": "b"}],
                            "backendRefs": [{"type": "Backend", "name": "a"}]}]}]}],
            "backends": {"a": {"endpoints": [{"address": "10.0.0.1:80"}]},
                         "b": {"endpoints": [{"address": b_endpoint}]}}}))
        .unwrap()
    };
    let (old, new) = (config("10.0.0.2:80"), config("10.0.0.3:80"));
    let before = build(&old);
    let (c, touched) = delta::apply(&old, &delta::diff(&old, &new).unwrap()).unwrap();
    let after = before
        .update("v2".into(), Arc::new(c), &touched, &Clients::new())
        .unwrap();
    let group = |t: &RouteTable, h: &str| t.ports[&80].listeners[0].exact[h].clone();
    assert!(Arc::ptr_eq(
        &group(&before, "a.example"),
        &group(&after, "a.example")
    ));
    assert!(!Arc::ptr_eq(
        &group(&before, "b.example"),
        &group(&after, "b.example")
    ));
    assert_eq!(shape(&after), shape(&build(&new)));
}

/// A terminating TLS listener's server config is built with the table, offers no ALPN, and is
/// shared by tables whose deltas did not send the listener; dropping `tls` makes it pass
/// through.
#[test]
fn a_terminating_listener_has_its_server_config_until_its_tls_changes() {
    let config = |backend: &str, tls: bool| -> Config {
        let mut listener = serde_json::json!({"name": "tls", "port": 443, "protocol": "TLS",
            "routes": [{"kind": "TLSRoute", "namespace": "ns", "name": "r",
                "creationTimestamp": "2024-01-01T00:00:00Z", "hostnames": ["a.example.com"],
                "rules": [{"backendRefs": [{"type": "Backend", "name": backend}]}]}]});
        if tls {
            listener["tls"] = serde_json::json!({"certificates": [{
                "certPem": include_str!("../tests/certs/example.pem"),
                "keyPem": include_str!("../tests/certs/example.key")}]});
        }
        let eps = serde_json::json!({"endpoints": [{"address": "10.0.0.1:80"}]});
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pylon.dev/dataplane/v1", "listeners": [listener],
            "backends": {"a": eps, "b": eps}}))
        .unwrap()
    };
    let step = |before: &RouteTable, old: &Config, new: &Config| {
        let (c, touched) = delta::apply(old, &delta::diff(old, new).unwrap()).unwrap();
        let after = before
            .update("v2".into(), Arc::new(c), &touched, &Clients::new())
            .unwrap();
        assert_eq!(shape(&after), shape(&build(new)));
        after
    };
    let terminate = |t: &RouteTable| t.ports[&443].listeners[0].terminate.clone();
    let old = config("a", true);
    let before = build(&old);
    let cfg = terminate(&before).expect("terminates");
    assert!(cfg.alpn_protocols.is_empty(), "{:?}", cfg.alpn_protocols);
    let routed = config("b", true);
    let after = step(&before, &old, &routed);
    assert!(Arc::ptr_eq(&cfg, &terminate(&after).unwrap()));
    let passthrough = step(&after, &routed, &config("b", false));
    assert!(terminate(&passthrough).is_none());
}

#[test]
fn a_udp_port_is_numbered_apart_from_tcp_and_takes_its_oldest_route() {
    let route = |ns: &str, name: &str, created: &str, backend: &str| {
        format!(
            "{{kind: UDPRoute, namespace: {ns}, name: {name}, creationTimestamp: '{created}', \
             rules: [{{backendRefs: [{{type: Backend, name: {backend}}}]}}]}}"
        )
    };
    // The oldest serves, whatever the order (and before names: `a/newer` sorts first).
    let config: Config = serde_yaml::from_str(&format!(
        "{{apiVersion: {}, listeners: [{{name: web, port: 53, protocol: HTTP}}, \
         {{name: dns, port: 53, protocol: UDP, routes: [{}, {}]}}, \
         {{name: empty, port: 54, protocol: UDP}}], \
         backends: {{a: {{endpoints: [{{address: '10.0.0.1:53'}}]}}, b: {{}}}}}}",
        pylon_config::API_VERSION,
        route("a", "newer", "2024-02-01T00:00:00Z", "b"),
        route("z", "first", "2024-01-01T00:00:00Z", "a"),
    ))
    .unwrap();
    let t = build(&config);
    assert_eq!(t.ports.keys().collect::<Vec<_>>(), [&53]);
    assert_eq!(t.ports[&53].protocol, ListenerProtocol::Http);
    let dns = &t.udp_ports[&53];
    assert_eq!(dns.listener, "dns");
    let rule = dns.rule.as_ref().expect("a route");
    assert_eq!(&*rule.route, "z/first");
    assert!(matches!(
        rule.pick(0),
        Some(Target::Backend { backend, .. }) if backend.name == "a"
    ));
    assert!(t.udp_ports[&54].rule.is_none());
}
