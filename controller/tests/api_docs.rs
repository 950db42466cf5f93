//! Keeps the generated reference in `api-docs/` and the chart's CRD in `charts/pylon/crds/`
//! current: each file is regenerated here from the Rust source of truth (the `GatewayParameters`
//! type's schema, the advertised feature list, the rendered metrics) and compared with the
//! committed copy. `UPDATE_API_DOCS=1 cargo test -p pylon-controller --test api_docs` rewrites them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use kube::CustomResourceExt;
use pylon_controller::features::SUPPORTED_FEATURES;
use pylon_controller::model::params::{
    Autoscaling, DisruptionBudget, GatewayParameters, GatewayParametersSpec, IntOrPercent,
    Resources,
};
use serde_json::Value;

const UPDATE_HINT: &str = "UPDATE_API_DOCS=1 cargo test -p pylon-controller --test api_docs";

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Compares `generated` with the committed file at `rel` (or rewrites it when
/// `UPDATE_API_DOCS=1`), failing with the differing lines.
fn check_generated(rel: &str, generated: &str) {
    let path = repo_path(rel);
    if std::env::var("UPDATE_API_DOCS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("writing {rel}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{rel} is missing ({e}); generate it with `{UPDATE_HINT}`"));
    if committed != generated {
        panic!(
            "{rel} is out of date with the Rust source; regenerate it with `{UPDATE_HINT}`.\n\
             Differences (- committed, + generated):\n{}",
            line_diff(&committed, generated)
        );
    }
}

/// A minimal line diff: the common prefix and suffix are skipped and the middle shown.
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = format!("@@ line {} @@\n", prefix + 1);
    for l in &a[prefix..a.len() - suffix] {
        let _ = writeln!(out, "-{l}");
    }
    for l in &b[prefix..b.len() - suffix] {
        let _ = writeln!(out, "+{l}");
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        out.push_str("(trailing newline differs)\n");
    }
    out
}

fn generated_header(source: &str) -> String {
    format!(
        "<!-- Generated from {source} by controller/tests/api_docs.rs; do not edit.\n     \
         Regenerate: {UPDATE_HINT} -->\n\n"
    )
}

// ---------------------------------------------------------------- GatewayParameters

/// Human-readable type of a JSON-schema node (`map[string]string`, `integer (int32)`, …).
fn schema_type(s: &Value) -> String {
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "integer or string".into();
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("any");
    match ty {
        "object" => match s.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", schema_type(v)),
            _ => "object".into(),
        },
        "array" => format!("[]{}", s.get("items").map_or("any".into(), schema_type)),
        _ => match s.get("format").and_then(Value::as_str) {
            Some(f) => format!("{ty} ({f})"),
            None => ty.into(),
        },
    }
}

/// Validation the schema itself enforces, in words.
fn schema_constraints(s: &Value) -> String {
    let mut c = Vec::new();
    for (key, word) in [
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("pattern", "pattern"),
        ("default", "default"),
    ] {
        if let Some(v) = s.get(key) {
            // Integral bounds read as integers (`0`, not `0.0`).
            let v = match v.as_f64() {
                Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
                _ => v.to_string(),
            };
            c.push(format!("{word} `{v}`"));
        }
    }
    if let Some(Value::Array(vals)) = s.get("enum") {
        let vals: Vec<String> = vals.iter().map(|v| format!("`{v}`")).collect();
        c.push(format!("one of {}", vals.join(", ")));
    }
    c.join("; ")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// One table row per field under `schema`, depth first, paths like `spec.resources.limits`.
fn field_rows(prefix: &str, schema: &Value, out: &mut Vec<[String; 5]>) {
    let Some(Value::Object(props)) = schema.get("properties") else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    for name in names {
        let prop = &props[name];
        let path = format!("{prefix}.{name}");
        out.push([
            format!("`{path}`"),
            format!("`{}`", schema_type(prop)),
            if required.contains(&name.as_str()) {
                "yes".into()
            } else {
                "no".into()
            },
            cell(
                prop.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ),
            cell(&schema_constraints(prop)),
        ]);
        field_rows(&path, prop, out);
    }
}

fn example_resource() -> GatewayParameters {
    GatewayParameters::new(
        "edge",
        GatewayParametersSpec {
            replicas: None,
            image: Some("ghcr.io/pylon-dev/pylon-dataplane:0.1.0".into()),
            service_type: Some("NodePort".into()),
            resources: Some(Resources {
                requests: BTreeMap::from([
                    ("cpu".into(), "100m".into()),
                    ("memory".into(), "64Mi".into()),
                ]),
                limits: BTreeMap::from([("memory".into(), "256Mi".into())]),
            }),
            labels: BTreeMap::from([("team".into(), "edge".into())]),
            annotations: BTreeMap::from([(
                "example.com/owner".into(),
                "platform@example.com".into(),
            )]),
            autoscaling: Some(Autoscaling {
                min_replicas: Some(2),
                max_replicas: 10,
                target_cpu_utilization_percentage: Some(70),
            }),
            pod_disruption_budget: Some(DisruptionBudget {
                min_available: None,
                max_unavailable: Some(IntOrPercent::Int(1)),
            }),
        },
    )
}

fn gateway_parameters_markdown() -> String {
    let crd = serde_json::to_value(GatewayParameters::crd()).expect("CRD serializes");
    let spec = &crd["spec"];
    let version = &spec["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut md = generated_header("controller/src/model/params.rs");
    md.push_str("# GatewayParameters\n\n");
    let _ = writeln!(
        md,
        "{}\n",
        schema["description"].as_str().unwrap_or_default()
    );
    md.push_str("| | |\n| --- | --- |\n");
    let _ = writeln!(
        md,
        "| apiVersion | `{}/{}` |",
        spec["group"].as_str().unwrap_or_default(),
        version["name"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "| kind | `{}` |",
        spec["names"]["kind"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "| plural | `{}` |",
        spec["names"]["plural"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "| scope | {} |",
        spec["scope"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "| CRD | `{}` ([YAML](../charts/pylon/crds/gatewayparameters.yaml), installed by the chart) |\n",
        crd["metadata"]["name"].as_str().unwrap_or_default()
    );
    md.push_str(
        "A GatewayClass names one in `spec.parametersRef` (group `pylon.dev`, kind \
         `GatewayParameters`, with `namespace`): the defaults for every Gateway of the class. A \
         Gateway names one in its own namespace in `spec.infrastructure.parametersRef`: its \
         set fields override the class's field by field (`labels` and `annotations` are merged, \
         the Gateway's keys winning). A reference that is not `pylon.dev/GatewayParameters`, \
         names an object that does not exist, or names one with invalid values sets \
         `Accepted=False` with reason `InvalidParameters` on the GatewayClass or Gateway that \
         holds the reference.\n\n",
    );
    md.push_str("## Fields\n\n");
    md.push_str("| field | type | required | description | validation |\n");
    md.push_str("| --- | --- | --- | --- | --- |\n");
    let mut rows = Vec::new();
    field_rows("spec", &schema["properties"]["spec"], &mut rows);
    assert!(!rows.is_empty(), "the CRD schema has no spec fields");
    for r in rows {
        let _ = writeln!(md, "| {} |", r.join(" | "));
    }
    md.push_str(
        "\nThe controller also checks (reason `InvalidParameters`, see above): `serviceType` is \
         `ClusterIP`, `NodePort` or `LoadBalancer`; `replicas` is not negative; `replicas` and \
         `autoscaling` are not both set in one object (across a class and a Gateway, \
         `autoscaling` wins); `autoscaling.minReplicas` (default 1) is at least 1 and at most \
         `maxReplicas`; the effective parameters of an autoscaled Gateway have \
         `resources.requests.cpu` (utilization is measured against it); `podDisruptionBudget` \
         sets exactly one of `minAvailable` and `maxUnavailable`, each a non-negative count or \
         a percentage from `0%` to `100%`.\n\n\
         ## What the controller creates\n\n\
         With `autoscaling`, an `autoscaling/v2` HorizontalPodAutoscaler `pylon-<gateway>` \
         scales the data-plane Deployment on average CPU utilization \
         (`targetCPUUtilizationPercentage`, default 80), and the Deployment is applied without \
         `replicas` so the two never fight. With `podDisruptionBudget`, a `policy/v1` \
         PodDisruptionBudget `pylon-<gateway>` selects the data-plane Pods. Both are owned by the \
         Gateway and deleted when the setting is removed.\n\n",
    );
    md.push_str("## Example\n\n```yaml\n");
    let mut example = example_resource();
    example.metadata.namespace = Some("pylon-system".into());
    md.push_str(&serde_yaml::to_string(&example).expect("example serializes"));
    md.push_str("```\n");
    md
}

#[test]
fn gateway_parameters_reference_is_current() {
    check_generated(
        "api-docs/gatewayparameters.md",
        &gateway_parameters_markdown(),
    );
}

#[test]
fn chart_crd_is_current() {
    let mut yaml = String::from(
        "# Generated from controller/src/model/params.rs by controller/tests/api_docs.rs; do not edit.\n",
    );
    let _ = writeln!(yaml, "# Regenerate: {UPDATE_HINT}");
    yaml.push_str(&serde_yaml::to_string(&GatewayParameters::crd()).expect("CRD serializes"));
    check_generated("charts/pylon/crds/gatewayparameters.yaml", &yaml);
}

#[test]
fn example_validates_and_round_trips_through_the_schema_type() {
    // The example in the reference must be one the controller accepts.
    let ex = example_resource();
    ex.spec.validate().expect("the documented example is valid");
    let yaml = serde_yaml::to_string(&ex).expect("serializes");
    let back: GatewayParameters = serde_yaml::from_str(&yaml).expect("parses back");
    assert_eq!(back.spec, ex.spec);
}

// ---------------------------------------------------------------- supported features

/// The resource a feature belongs to, from the conformance suite's naming.
fn feature_area(name: &str) -> &'static str {
    for (prefix, area) in [
        ("BackendTLSPolicy", "BackendTLSPolicy"),
        ("GRPCRoute", "GRPCRoute"),
        ("HTTPRoute", "HTTPRoute"),
        ("Gateway", "Gateway"),
        ("ListenerSet", "ListenerSet"),
        ("ReferenceGrant", "ReferenceGrant"),
        ("TLSRoute", "TLSRoute"),
        ("UDPRoute", "UDPRoute"),
    ] {
        if name.starts_with(prefix) {
            return area;
        }
    }
    panic!("feature {name} has no area; add its prefix to feature_area")
}

fn features_markdown() -> String {
    let mut md = generated_header("controller/src/features.rs");
    md.push_str("# Supported features\n\n");
    md.push_str(
        "The Gateway API features Pylon's controller advertises in \
         `GatewayClass.status.supportedFeatures` (names as in the Gateway API v1.5.1 \
         conformance suite). The conformance runner infers the features to test from this list; \
         its latest results are in \
         [conformance/reports/v1.5.1/](../conformance/reports/v1.5.1/).\n\n",
    );
    let _ = writeln!(md, "{} features.\n", SUPPORTED_FEATURES.len());
    md.push_str("| feature | resource |\n| --- | --- |\n");
    for f in SUPPORTED_FEATURES {
        let _ = writeln!(md, "| `{f}` | {} |", feature_area(f));
    }
    md
}

#[test]
fn supported_features_reference_is_current() {
    check_generated("api-docs/supported-features.md", &features_markdown());
}

// ---------------------------------------------------------------- metrics

#[derive(Default)]
struct MetricDoc {
    kind: String,
    help: String,
    labels: Vec<String>,
}

/// Metric families in a Prometheus text exposition: name → type, help, label names.
fn parse_exposition(text: &str) -> BTreeMap<String, MetricDoc> {
    let mut out: BTreeMap<String, MetricDoc> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().help = help.into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
            out.entry(name.into()).or_default().kind = kind.into();
        } else if !line.is_empty() {
            let series = line.split_once(' ').expect("sample has a value").0;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            // Histogram samples belong to their family (`x_bucket` → `x`).
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| out.get(*f).is_some_and(|d| d.kind == "histogram"))
                })
                .unwrap_or(name);
            let doc = out
                .get_mut(family)
                .unwrap_or_else(|| panic!("sample {name} has no # TYPE line"));
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let label = pair.split_once('=').expect("label=value").0.to_string();
                if !doc.labels.contains(&label) {
                    doc.labels.push(label);
                }
            }
        }
    }
    out
}

/// What the label values are, for labels whose meaning the exposition does not say.
fn label_note(metric: &str, label: &str) -> &'static str {
    match (metric, label) {
        ("pylon_udp_sessions_total", "outcome") => {
            "`outcome`: how a UDP session ended: `idle` (the idle timeout), `removed` (its port \
             left the config), `drained` (cut by the drain timeout) or `backend_error` (reading \
             the backend's replies failed)"
        }
        ("pylon_udp_dropped_datagrams_total", "reason") => {
            "`reason`: `no_route`, `invalid_backend`, `no_endpoint`, `session_limit` (a new \
             client beyond `--max-udp-sessions`), `draining` (a new client while draining) or \
             `send_failed` (a socket would not take it, either way)"
        }
        _ => label_note_any(label),
    }
}

/// [`label_note`] for labels that mean the same on every metric.
fn label_note_any(label: &str) -> &'static str {
    match label {
        "route" => {
            "`route`: `namespace/name` of the route that answered; `_none` when none matched, \
             `_overflow` once 10,000 (route, code) series exist"
        }
        "code" => "`code`: HTTP response status",
        "le" => "`le`: bucket upper bound in seconds (on `_bucket`)",
        "version" => "`version`: version of the config being served",
        "engine" => {
            "`engine`: `native` (the HTTP/1.1 engine) or `hyper` (HTTP/2, h2c, and what the \
             native engine hands over)"
        }
        "outcome" => {
            "`outcome`: how a connection to a TLS or TCP listener ended: `relayed`, \
             `no_route`, `bad_client_hello` (TLS), `handshake_failed` (a terminating TLS \
             listener's), `invalid_backend` or `backend_unavailable`"
        }
        "protocol" => "`protocol`: the listener's, `tls` or `tcp`",
        "direction" => "`direction`: `client_to_backend` or `backend_to_client`",
        other => panic!("label {other} is undocumented; describe it in label_note"),
    }
}

/// Descriptions for data-plane metrics the exposition gives no `# HELP` for.
fn fallback_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "pylon_active_connections" => "Client connections currently open.",
        "pylon_config_info" => "Always 1; the `version` label is the config being served.",
        "pylon_config_ready" => "1 once a config has been applied, else 0.",
        "pylon_config_reloads_total" => "Configs applied.",
        "pylon_config_rejections_total" => "Configs rejected (the previous one kept serving).",
        _ => return None,
    })
}

fn metrics_table(md: &mut String, families: &BTreeMap<String, MetricDoc>) {
    md.push_str("| metric | type | labels | description |\n| --- | --- | --- | --- |\n");
    for (name, doc) in families {
        assert!(!doc.kind.is_empty(), "{name} has no # TYPE");
        let help = if doc.help.is_empty() {
            fallback_help(name)
                .unwrap_or_else(|| panic!("{name} has no # HELP; describe it in fallback_help"))
        } else {
            &doc.help
        };
        let labels: Vec<&str> = doc.labels.iter().map(|l| label_note(name, l)).collect();
        let labels = if labels.is_empty() {
            "—".to_string()
        } else {
            labels.join("<br>")
        };
        let _ = writeln!(
            md,
            "| `{name}` | {} | {labels} | {} |",
            doc.kind,
            cell(help)
        );
    }
}

fn metrics_markdown() -> String {
    let dp = pylon_dataplane::metrics::Metrics::default();
    // One request so labelled series appear in the exposition.
    dp.record(
        "ns/route",
        200,
        Duration::from_millis(1),
        pylon_dataplane::metrics::Engine::Native,
    );
    let dataplane = parse_exposition(&dp.render(true));
    let controller = parse_exposition(&pylon_controller::metrics::render());
    assert!(dataplane.contains_key("pylon_requests_total"));
    assert!(controller.contains_key("pylon_controller_translations_total"));

    let mut md = generated_header("dataplane/src/metrics.rs and controller/src/metrics.rs");
    md.push_str("# Metrics\n\n");
    md.push_str(
        "Both processes serve Prometheus text format on `GET /metrics` of their admin server. \
         Label values are bounded: routes come from the configuration, codes are HTTP \
         statuses.\n\n",
    );
    md.push_str(
        "## Data plane\n\nAdmin server `--admin-addr` (default `0.0.0.0:9901`); also serves \
         `/ready` and `/config_dump` (private keys redacted).\n\n",
    );
    metrics_table(&mut md, &dataplane);
    md.push_str(
        "\n## Controller\n\nAdmin server `--admin-addr` / `PYLON_ADMIN_ADDR` (default \
         `0.0.0.0:9090`, the chart's `adminPort`); also serves `/healthz`, `/ready` and \
         `/config_dump`.\n\n",
    );
    metrics_table(&mut md, &controller);
    md
}

#[test]
fn metrics_reference_is_current() {
    check_generated("api-docs/metrics.md", &metrics_markdown());
}

#[test]
fn exposition_parser_groups_histograms_and_labels() {
    let text = "# HELP a_seconds Lat.\n# TYPE a_seconds histogram\n\
                a_seconds_bucket{le=\"0.1\"} 1\na_seconds_sum 0.1\na_seconds_count 1\n\
                # TYPE b_total counter\nb_total{route=\"x,y\",code=\"200\"} 3\n";
    let m = parse_exposition(text);
    assert_eq!(m.len(), 2, "{:?}", m.keys().collect::<Vec<_>>());
    assert_eq!(m["a_seconds"].labels, ["le"]);
    assert_eq!(m["a_seconds"].help, "Lat.");
    assert_eq!(m["b_total"].kind, "counter");
    assert_eq!(m["b_total"].labels, ["route", "code"]);
}

#[test]
fn diff_names_changed_lines() {
    let d = line_diff("a\nb\nc\n", "a\nB\nc\n");
    assert_eq!(d, "@@ line 2 @@\n-b\n+B\n");
}
