//! The controller's layers, lowest first: each module imports only modules of its own layer or
//! a lower one, and no two import each other (directly or around). A new module fails this
//! test until it is placed. The layers are described in docs/ARCHITECTURE.md.

#[path = "../../scripts/module_graph.rs"]
mod module_graph;

const LAYERS: &[&[&str]] = &[
    // The model (Pylon's types, converted once from the API's) and what needs nothing else:
    // names, versions, feature lists, metrics counters, the config server's CA.
    &[
        "model",
        "naming",
        "features",
        "version",
        "metrics",
        "leader",
        "config_ca",
        "test_fixtures",
    ],
    // Every input at one moment, and the edge conversion per kind that fills it.
    &["snapshot", "kinds", "snapshot_yaml"],
    // The pure translation: snapshot in, configs, statuses and infrastructure out.
    &["translate"],
    // What is derived from a translation: status bodies, what data planes really serve, the
    // provisioner, the config server's authentication and TLS.
    &[
        "status",
        "serving_status",
        "provision",
        "auth",
        "config_tls",
    ],
    // State kept across changes: the config hub, the watches, the first status.
    &["config_hub", "watch", "first_status"],
    // Writers: the status writer, the data-plane Pod reporter.
    &["status_writer", "dataplane_pods"],
    // Servers.
    &["config_server", "admin", "install_check"],
    // The loop that wires them.
    &["run"],
];

#[test]
fn the_checker_finds_what_it_must() {
    module_graph::self_test();
}

#[test]
fn modules_import_only_downward_and_in_no_cycle() {
    module_graph::check(env!("CARGO_MANIFEST_DIR"), LAYERS, 20);
}
