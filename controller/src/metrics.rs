//! Process-wide counters exported in Prometheus text format on the admin server.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Full translations run.
pub static TRANSLATIONS: AtomicU64 = AtomicU64::new(0);
/// Endpoint-only updates (EndpointSlice changes that skipped translation).
pub static ENDPOINT_UPDATES: AtomicU64 = AtomicU64::new(0);
/// Routes attached afresh by translations (the rest were kept: see [`ROUTES_REUSED`]).
pub static ROUTES_ATTACHED: AtomicU64 = AtomicU64::new(0);
/// Routes whose attachment a translation kept from the one before (nothing they read changed).
pub static ROUTES_REUSED: AtomicU64 = AtomicU64::new(0);
/// Microseconds the last translation took.
pub static LAST_TRANSLATE_MICROS: AtomicU64 = AtomicU64::new(0);
/// Status patches written.
pub static STATUS_WRITES: AtomicU64 = AtomicU64::new(0);
/// Objects that failed conversion and were skipped.
pub static SKIPPED_OBJECTS: AtomicU64 = AtomicU64::new(0);
/// Watch events that changed the model (adds, removals, spec or label changes); an update that
/// leaves the model as it was (a status write) is not counted and translates nothing.
pub static MODEL_CHANGES: AtomicU64 = AtomicU64::new(0);
/// Server-side applies done by the provisioner.
pub static PROVISION_APPLIES: AtomicU64 = AtomicU64::new(0);
/// Config streams currently open.
pub static CONFIG_STREAMS: AtomicU64 = AtomicU64::new(0);
/// Snapshots sent on config streams.
pub static SNAPSHOTS_SENT: AtomicU64 = AtomicU64::new(0);
/// Deltas sent on config streams.
pub static DELTAS_SENT: AtomicU64 = AtomicU64::new(0);
/// Config streams that resumed from the version the data plane runs (no snapshot).
pub static STREAM_RESUMES: AtomicU64 = AtomicU64::new(0);
/// Acks received (accepted or not).
pub static ACKS: AtomicU64 = AtomicU64::new(0);
/// Acks that rejected a config.
pub static REJECTED_ACKS: AtomicU64 = AtomicU64::new(0);

/// Renders every counter in Prometheus text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    for (name, kind, help, v) in [
        (
            "pylon_controller_translations_total",
            "counter",
            "Full translations run.",
            &TRANSLATIONS,
        ),
        (
            "pylon_controller_endpoint_updates_total",
            "counter",
            "Endpoint-only updates.",
            &ENDPOINT_UPDATES,
        ),
        (
            "pylon_controller_routes_attached_total",
            "counter",
            "Routes attached afresh by translations.",
            &ROUTES_ATTACHED,
        ),
        (
            "pylon_controller_routes_reused_total",
            "counter",
            "Routes whose attachment a translation kept (nothing they read changed).",
            &ROUTES_REUSED,
        ),
        (
            "pylon_controller_last_translate_microseconds",
            "gauge",
            "Duration of the last translation.",
            &LAST_TRANSLATE_MICROS,
        ),
        (
            "pylon_controller_status_writes_total",
            "counter",
            "Status patches written.",
            &STATUS_WRITES,
        ),
        (
            "pylon_controller_skipped_objects_total",
            "counter",
            "Malformed objects skipped.",
            &SKIPPED_OBJECTS,
        ),
        (
            "pylon_controller_model_changes_total",
            "counter",
            "Watch events that changed the model (status-only updates excluded).",
            &MODEL_CHANGES,
        ),
        (
            "pylon_controller_provision_applies_total",
            "counter",
            "Server-side applies of data-plane objects.",
            &PROVISION_APPLIES,
        ),
        (
            "pylon_controller_config_streams",
            "gauge",
            "Open data-plane config streams.",
            &CONFIG_STREAMS,
        ),
        (
            "pylon_controller_config_snapshots_total",
            "counter",
            "Snapshots sent on config streams.",
            &SNAPSHOTS_SENT,
        ),
        (
            "pylon_controller_config_deltas_total",
            "counter",
            "Deltas sent on config streams.",
            &DELTAS_SENT,
        ),
        (
            "pylon_controller_config_stream_resumes_total",
            "counter",
            "Config streams resumed from the data plane's running version.",
            &STREAM_RESUMES,
        ),
        (
            "pylon_controller_acks_total",
            "counter",
            "Config acks received.",
            &ACKS,
        ),
        (
            "pylon_controller_rejected_acks_total",
            "counter",
            "Config acks that rejected a config.",
            &REJECTED_ACKS,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
    out
}
