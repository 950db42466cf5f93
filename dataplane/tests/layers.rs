//! The data plane's layers, lowest first: each module imports only modules of its own layer or
//! a lower one, and no two import each other (directly or around). A new module fails this
//! test until it is placed in the layer it belongs to. The layers are described in
//! docs/ARCHITECTURE.md.

#[path = "../../scripts/module_graph.rs"]
mod module_graph;

const LAYERS: &[&[&str]] = &[
    // Foundation: the body type, field and header parsers (and the ClientHello reader),
    // per-thread helpers, matching. Nothing here knows of a connection or a backend.
    &[
        "alloc",
        "body",
        "worker",
        "random",
        "fields",
        "head_budget",
        "idle",
        "lazy_tcp",
        "rewind",
        "san",
        "client_hello",
        "outlier",
        "accesslog",
        "filters",
        "matching",
    ],
    // What the layers above share: errors and their answers, hop-by-hop fields, request
    // targets, limits, TLS configs.
    &[
        "errors",
        "deadline",
        "hop_by_hop",
        "target",
        "limits",
        "tls",
    ],
    // The HTTP/1.1 codec: heads, framing, buffers, timers.
    &["h1"],
    // Upstreams: the native path's TCP pool, hyper's pools, backends with their endpoints.
    &["tcp_pool", "h1_pool", "backend"],
    // The route table (its rules hold their backends), the metrics, the shared state.
    &["table", "metrics", "state"],
    // The request path: selection, plan, forwarding, tunnels.
    &["proxy"],
    // The serving engines: hyper's and the native HTTP/1.1 one (which hands hyper what it
    // does not serve), the L4 listeners' (TLS and TCP: bytes relayed, no requests), UDP
    // sessions.
    &["hyper_serve", "native", "l4", "udp"],
    // Listeners.
    &["server"],
    // What runs beside the listeners: the controller client, the admin server, memory upkeep.
    &["client", "admin", "memory"],
];

#[test]
fn the_checker_finds_what_it_must() {
    module_graph::self_test();
}

#[test]
fn modules_import_only_downward_and_in_no_cycle() {
    module_graph::check(env!("CARGO_MANIFEST_DIR"), LAYERS, 20);
}
