//! The contract crate's layers, lowest first (the crate root, `lib.rs`, holds the config types
//! every module uses): each module imports only its own layer or lower ones, and no cycle.

#[path = "../../scripts/module_graph.rs"]
mod module_graph;

const LAYERS: &[&[&str]] = &[
    // Parsers of single values.
    &["duration", "host", "pem", "timestamp"],
    // Deltas between configs, and what they touched.
    &["delta"],
    // Validation, whole or of what a delta touched.
    &["validate"],
    // Ways in: files and the wire protocol.
    &["load", "protocol"],
];

#[test]
fn the_checker_finds_what_it_must() {
    module_graph::self_test();
}

#[test]
fn modules_import_only_downward_and_in_no_cycle() {
    module_graph::check(env!("CARGO_MANIFEST_DIR"), LAYERS, 8);
}
