//! Table tests for matching and precedence, through the real route table.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::backend::Clients;
use crate::matching::{RequestView, normalize_host};
use crate::table::RouteTable;
use pylon_config as config;

/// Routes given as YAML (a list of routes), attached to one HTTP listener on port 80.
fn table(routes: &str) -> RouteTable {
    let text = format!(
        "apiVersion: pylon.dev/dataplane/v1\nlisteners:\n- name: l\n  port: 80\n  protocol: HTTP\n  routes: {routes}\nbackends:\n  b: {{endpoints: []}}\n"
    );
    let cfg = config::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    RouteTable::build("t".into(), Arc::new(cfg), &Clients::new()).unwrap()
}

/// `"GET host /path?query h1=v1 h2=v2"` → `Some("ns/name#rule")` of the winner.
fn winner(t: &RouteTable, req: &str) -> Option<String> {
    let mut parts = req.split_whitespace();
    let method = Method::from_bytes(parts.next().unwrap().as_bytes()).unwrap();
    let host = parts.next().unwrap();
    let target = parts.next().unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for h in parts {
        let (n, v) = h.split_once('=').unwrap();
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let grpc = headers
        .get("content-type")
        .is_some_and(|v| v == "application/grpc");
    let view = RequestView {
        method: &method,
        path,
        query,
        headers: &headers,
    };
    let listener = t.ports[&80].listener_for(host)?;
    listener
        .lookup(host, &view, grpc)
        .map(|f| format!("{}#{}", f.rule.route, f.rule.rule))
}

fn route(name: &str, ts: &str, hostnames: &str, rules: &str) -> String {
    format!(
        "{{kind: HTTPRoute, namespace: ns, name: {name}, creationTimestamp: '{ts}', hostnames: {hostnames}, rules: {rules}}}"
    )
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-06-01T00:00:00Z";

fn check(t: &RouteTable, cases: &[(&str, Option<&str>)]) {
    for (req, want) in cases {
        assert_eq!(winner(t, req).as_deref(), *want, "request: {req}");
    }
}

#[test]
fn hostnames() {
    assert_eq!(normalize_host("Example.COM:8080"), "example.com");
    assert_eq!(normalize_host("[::1]:80"), "[::1]");
    let r = "[{backendRefs: [{type: Backend, name: b}]}]";
    let t = table(&format!(
        "[{}, {}, {}, {}]",
        route("exact", T1, "[a.example.com]", r),
        route("wild", T0, "['*.example.com']", r),
        route("longwild", T1, "['*.b.example.com']", r),
        route("any", T0, "[]", r),
    ));
    check(
        &t,
        &[
            ("GET a.example.com /", Some("ns/exact#0")),
            ("GET x.example.com /", Some("ns/wild#0")),
            ("GET x.b.example.com /", Some("ns/longwild#0")),
            ("GET example.com /", Some("ns/any#0")),
            ("GET other.org /", Some("ns/any#0")),
        ],
    );
}

#[test]
fn paths_and_precedence() {
    let t = table(&format!(
        "[{}, {}]",
        route(
            "paths",
            T0,
            "[]",
            "[{matches: [{path: {type: PathPrefix, value: /foo}}]},
              {matches: [{path: {type: PathPrefix, value: /foo/bar/}}]},
              {matches: [{path: {type: Exact, value: /foo/bar}}]},
              {matches: [{path: {type: RegularExpression, value: '/re/[0-9]+'}}]},
              {matches: [{path: {type: PathPrefix, value: /}}]}]"
        ),
        route(
            "conds",
            T0,
            "[]",
            "[{matches: [{path: {type: PathPrefix, value: /c}, method: POST}]},
              {matches: [{path: {type: PathPrefix, value: /c}, headers: [{name: X-A, value: '1'}]}]},
              {matches: [{path: {type: PathPrefix, value: /c}, headers: [{name: x-a, value: '1'}, {name: x-b, value: '2'}]}]},
              {matches: [{path: {type: PathPrefix, value: /c}, queryParams: [{name: q, value: 'a b'}]}]},
              {matches: [{path: {type: PathPrefix, value: /c}, headers: [{type: RegularExpression, name: x-re, value: 'v[0-9]'}]}]}]"
        ),
    ));
    check(
        &t,
        &[
            ("GET h /foo", Some("ns/paths#0")),
            ("GET h /foo/", Some("ns/paths#0")),
            ("GET h /foo/x", Some("ns/paths#0")),
            ("GET h /foobar", Some("ns/paths#4")),
            ("GET h /foo/bar", Some("ns/paths#2")), // Exact beats the longer prefix
            ("GET h /foo/bar/", Some("ns/paths#1")), // trailing slash of a prefix is ignored
            ("GET h /foo/bar/baz", Some("ns/paths#1")),
            ("GET h /foo/barbaz", Some("ns/paths#0")),
            ("GET h /re/123", Some("ns/paths#3")),
            ("GET h /re/123x", Some("ns/paths#4")), // regex must match the whole path
            ("POST h /c", Some("ns/conds#0")),      // method beats headers
            ("POST h /c x-a=1 x-b=2", Some("ns/conds#0")),
            ("GET h /c x-a=1", Some("ns/conds#1")),
            ("GET h /c X-A=1 x-b=2", Some("ns/conds#2")), // more headers win; names case-insensitive
            ("GET h /c x-a=2", Some("ns/paths#4")),       // header values are exact
            ("GET h /c?q=a%20b", Some("ns/conds#3")),
            ("GET h /c?q=a+b&q=zzz", Some("ns/conds#3")), // the first value counts
            ("GET h /c?q=zzz&q=a+b", Some("ns/paths#4")),
            ("GET h /c x-a=1 ", Some("ns/conds#1")),
            ("GET h /c x-re=v7", Some("ns/conds#4")),
            ("GET h /c x-re=v77", Some("ns/paths#4")),
        ],
    );
}

#[test]
fn ties_go_to_the_oldest_then_by_name_then_rule_order() {
    let rules = "[{matches: [{path: {type: PathPrefix, value: /x}}]}, {matches: [{path: {type: PathPrefix, value: /x}}]}]";
    let t = table(&format!(
        "[{}, {}, {}]",
        route("b-new", T1, "[]", rules),
        route("c-old", T0, "[]", rules),
        route("a-old", T0, "[]", rules)
    ));
    check(&t, &[("GET h /x", Some("ns/a-old#0"))]);
    let t = table(&format!(
        "[{}, {}]",
        route("b-new", T1, "[]", rules),
        route("z-old", T0, "[]", rules)
    ));
    check(&t, &[("GET h /x", Some("ns/z-old#0"))]);
}

#[test]
fn hostname_precedence_comes_before_path() {
    let t = table(&format!(
        "[{}, {}]",
        route(
            "specific",
            T1,
            "[a.example.com]",
            "[{matches: [{path: {type: PathPrefix, value: /}}]}]"
        ),
        route(
            "generic",
            T0,
            "[]",
            "[{matches: [{path: {type: Exact, value: /exact}}]}]"
        ),
    ));
    check(
        &t,
        &[
            ("GET a.example.com /exact", Some("ns/specific#0")),
            ("GET b.example.com /exact", Some("ns/generic#0")),
        ],
    );
}

#[test]
fn grpc_matching() {
    let t = table(
        "[{kind: GRPCRoute, namespace: ns, name: g, creationTimestamp: '2024-01-01T00:00:00Z', rules: [
            {matches: [{grpc: {service: echo.Echo, method: Say}}]},
            {matches: [{grpc: {service: echo.Echo}}]},
            {matches: [{grpc: {type: RegularExpression, method: 'S.*'}}]},
            {matches: [{grpc: {method: Other}, headers: [{name: x-v, value: '1'}]}]},
            {}]}]",
    );
    let g = "content-type=application/grpc";
    check(
        &t,
        &[
            (&format!("POST h /echo.Echo/Say {g}"), Some("ns/g#0")),
            (&format!("POST h /echo.Echo/Shout {g}"), Some("ns/g#1")),
            (&format!("POST h /other.Svc/Sing {g}"), Some("ns/g#2")),
            (&format!("POST h /x.Y/Other {g} x-v=1"), Some("ns/g#3")),
            (&format!("POST h /x.Y/Other {g}"), Some("ns/g#4")),
            ("POST h /echo.Echo/Say", None), // not gRPC: GRPCRoutes do not answer
        ],
    );
}

#[test]
fn segment_index_keeps_precedence() {
    // Many routes on one host: the segment index must give the same winners as a scan.
    let mut routes = Vec::new();
    for i in 0..300 {
        routes.push(route(
            &format!("r{i:03}"),
            T0,
            "[]",
            &format!("[{{matches: [{{path: {{type: PathPrefix, value: /s{i}}}}}]}}]"),
        ));
    }
    routes.push(route(
        "exact",
        T1,
        "[]",
        "[{matches: [{path: {type: Exact, value: /s7/x}}]}]",
    ));
    routes.push(route(
        "deep",
        T1,
        "[]",
        "[{matches: [{path: {type: PathPrefix, value: /s7/x/y}}]}]",
    ));
    routes.push(route(
        "regex",
        T0,
        "[]",
        "[{matches: [{path: {type: RegularExpression, value: '/s7/r.*'}}]}]",
    ));
    routes.push(route(
        "root",
        T1,
        "[]",
        "[{matches: [{path: {type: PathPrefix, value: /}}]}]",
    ));
    routes.push(route(
        "slash",
        T1,
        "[]",
        "[{matches: [{path: {type: Exact, value: /}}]}]",
    ));
    let t = table(&format!("[{}]", routes.join(", ")));
    check(
        &t,
        &[
            ("GET h /s7", Some("ns/r007#0")),
            ("GET h /s7/x", Some("ns/exact#0")),
            ("GET h /s7/x/y/z", Some("ns/deep#0")),
            ("GET h /s7/r1", Some("ns/regex#0")),
            ("GET h /s299/a", Some("ns/r299#0")),
            ("GET h /s3000", Some("ns/root#0")),
            ("GET h /", Some("ns/slash#0")),
            ("GET h /s70", Some("ns/r070#0")),
        ],
    );
}
