//! In-process benchmark of one route change at scale (issue #15): the cost, on each side of the
//! config stream, of a snapshot (the whole config: encode, decode, validate, build the route
//! table) against a delta (diff, encode, decode, apply, validate what it touched, rebuild what
//! it touched), in the same run. One listener with N routes of one hostname each and two
//! backends, as `bench/controlplane.sh` sets up; the change moves one route from backend `a` to
//! `b` and back. Not a test: it prints one `BENCH {json}` line per size.
//!
//! `cargo run --release -p pylon-dataplane --example config_apply [-- 1000,5000 [iterations]]`

use std::time::Instant;

use pylon_config::protocol::Update;
use pylon_config::{Config, delta};
use pylon_dataplane::state::Shared;

fn config(n: usize, moved: &str) -> Config {
    let routes: Vec<_> = (0..n)
        .map(|i| {
            let backend = if i == n / 2 { moved } else { "a" };
            serde_json::json!({"kind": "HTTPRoute", "namespace": "cp-bench", "name": format!("r-{i:05}"),
                "creationTimestamp": "2026-12-04T00:00:00Z", "hostnames": [format!("r-{i:05}.cp-bench.example")],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                           "backendRefs": [{"type": "Backend", "name": backend, "weight": 1}]}]})
        })
        .collect();
    let eps = |a: &str| serde_json::json!({"endpoints": [{"address": a, "ready": true}]});
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pylon.dev/dataplane/v1",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "routes": routes}],
        "backends": {"a": eps("10.0.0.1:8080"), "b": eps("10.0.0.2:8080")}}))
    .expect("a valid config")
}

fn line(u: &Update) -> Vec<u8> {
    serde_json::to_vec(u).expect("serialisable")
}

/// Median and maximum of `f`'s duration in microseconds over `iterations` runs.
fn time(iterations: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let mut t: Vec<f64> = (0..iterations)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[t.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1000,5000".into())
        .split(',')
        .map(|s| s.parse().expect("sizes: comma-separated numbers"))
        .collect();
    let iterations: usize = args.next().map_or(51, |s| s.parse().expect("iterations"));
    for n in sizes {
        let configs = [config(n, "a"), config(n, "b")];
        let versions = ["va", "vb"];
        let snapshot = |i: usize| Update::Snapshot {
            version: versions[i % 2].into(),
            config: Box::new(configs[i % 2].clone()),
        };
        let delta_update = |i: usize| Update::Delta {
            version: versions[i % 2].into(),
            base: versions[(i + 1) % 2].into(),
            delta: delta::diff(&configs[(i + 1) % 2], &configs[i % 2]).expect("same apiVersion"),
        };
        // The controller: build the update line.
        let (snap_encode, _) = time(iterations, |i| drop(line(&snapshot(i))));
        let (delta_encode, _) = time(iterations, |i| drop(line(&delta_update(i))));
        let (snap_line, delta_line) = (line(&snapshot(0)), line(&delta_update(1)));
        // The data plane: decode, validate, build, swap.
        let shared = Shared::new();
        let apply = |shared: &Shared, l: &[u8]| match serde_json::from_slice(l).expect("decodes") {
            Update::Snapshot { version, config } => shared.apply(&version, *config),
            Update::Delta {
                version,
                base,
                delta,
            } => shared.apply_delta(&version, &base, &delta),
            Update::Ping => Ok(()),
        };
        let snaps = [line(&snapshot(0)), line(&snapshot(1))];
        let (snap_apply, snap_apply_max) = time(iterations, |i| {
            apply(&shared, &snaps[i % 2]).expect("applies")
        });
        apply(&shared, &snaps[0]).expect("applies");
        let deltas = [line(&delta_update(1)), line(&delta_update(0))];
        let (delta_apply, delta_apply_max) = time(iterations, |i| {
            apply(&shared, &deltas[i % 2]).expect("applies")
        });
        println!(
            "BENCH {}",
            serde_json::json!({
                "bench": "config_apply", "routes": n, "iterations": iterations,
                "snapshot": {"bytes": snap_line.len(), "encode_us": snap_encode,
                             "apply_us": snap_apply, "apply_max_us": snap_apply_max},
                "delta": {"bytes": delta_line.len(), "diff_encode_us": delta_encode,
                          "apply_us": delta_apply, "apply_max_us": delta_apply_max},
                "apply_speedup": snap_apply / delta_apply,
            })
        );
    }
}
