//! Config loading: a full valid config round-trips; every kind of bad input is rejected with an
//! error naming the field (insta snapshots).

use pylon_config::{self as config, Config};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

/// `data/<name>.yaml` with `"@file@"` placeholders replaced by the PEM in `certs/<file>`.
fn fixture(name: &str) -> String {
    fill(&std::fs::read_to_string(format!("{DIR}/data/{name}.yaml")).unwrap())
}

fn fill(text: &str) -> String {
    let mut out = text.to_string();
    for f in [
        "ca.pem",
        "example.pem",
        "example.key",
        "other.pem",
        "other.key",
        "client.pem",
        "client.key",
    ] {
        let pem = std::fs::read_to_string(format!("{DIR}/certs/{f}")).unwrap();
        out = out.replace(&format!("\"@{f}@\""), &serde_json::to_string(&pem).unwrap());
    }
    out
}

fn full() -> Config {
    config::parse_str(&fixture("full")).expect("full.yaml is valid")
}

#[test]
fn full_config_parses() {
    insta::assert_yaml_snapshot!(full(), {
        ".listeners[].tls.certificates[].certPem" => "[pem]",
        ".listeners[].tls.certificates[].keyPem" => "[pem]",
        ".backends.*.tls.caPem" => "[pem]",
        ".backends.*.tls.clientCertPem" => "[pem]",
        ".backends.*.tls.clientKeyPem" => "[pem]",
    });
}

#[test]
fn json_and_yaml_agree() {
    let cfg = full();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(config::parse_str(&json).unwrap(), cfg);
}

/// Applies a YAML edit to the full config and returns the load error.
fn error_after(edit: impl FnOnce(&mut serde_yaml::Value)) -> String {
    let mut v: serde_yaml::Value = serde_yaml::from_str(&fixture("full")).unwrap();
    edit(&mut v);
    let text = serde_yaml::to_string(&v).unwrap();
    config::parse_str(&text)
        .expect_err("edited config must be rejected")
        .to_string()
}

fn rule0(v: &mut serde_yaml::Value) -> &mut serde_yaml::Value {
    &mut v["listeners"][0]["routes"][0]["rules"][0]
}

fn yaml(s: &str) -> serde_yaml::Value {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(&str, String)> = vec![
        ("api_version", error_after(|v| v["apiVersion"] = yaml("v0"))),
        (
            "unknown_field",
            error_after(|v| v["listeners"][0]["colour"] = yaml("red")),
        ),
        (
            "bad_port_type",
            error_after(|v| v["listeners"][0]["port"] = yaml("http")),
        ),
        (
            "bad_regex",
            error_after(|v| {
                rule0(v)["matches"][0]["path"] = yaml("{type: RegularExpression, value: '(['}")
            }),
        ),
        (
            "path_no_slash",
            error_after(|v| rule0(v)["matches"][0]["path"] = yaml("{type: Exact, value: foo}")),
        ),
        (
            "header_regex",
            error_after(|v| rule0(v)["matches"][0]["headers"][1]["value"] = yaml("'*'")),
        ),
        (
            "bad_method",
            error_after(|v| rule0(v)["matches"][0]["method"] = yaml("'GE T'")),
        ),
        (
            "unknown_backend",
            error_after(|v| rule0(v)["backendRefs"][0]["name"] = yaml("nope")),
        ),
        (
            "redirect_status",
            error_after(|v| {
                v["listeners"][0]["routes"][0]["rules"][1]["filters"][0]["statusCode"] = yaml("304")
            }),
        ),
        (
            "prefix_rewrite_on_exact",
            error_after(|v| rule0(v)["matches"][0]["path"] = yaml("{type: Exact, value: /api}")),
        ),
        (
            "https_without_tls",
            error_after(|v| {
                v["listeners"][1]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("tls")
                    .map(drop)
                    .unwrap()
            }),
        ),
        (
            "bad_cert",
            error_after(|v| {
                v["listeners"][1]["tls"]["certificates"][0]["certPem"] = yaml("garbage")
            }),
        ),
        (
            "port_protocol_clash",
            error_after(|v| v["listeners"][1]["port"] = yaml("8080")),
        ),
        (
            "duplicate_listener",
            error_after(|v| v["listeners"][1]["name"] = yaml("http")),
        ),
        (
            "bad_hostname",
            error_after(|v| v["listeners"][0]["routes"][0]["hostnames"][0] = yaml("Ex_ample.com")),
        ),
        (
            "bad_timestamp",
            error_after(|v| {
                v["listeners"][0]["routes"][0]["creationTimestamp"] = yaml("yesterday")
            }),
        ),
        (
            "bad_duration",
            error_after(|v| rule0(v)["timeouts"]["request"] = yaml("10")),
        ),
        (
            "retry_code",
            error_after(|v| rule0(v)["retry"]["codes"][0] = yaml("200")),
        ),
        (
            "grpc_with_path",
            error_after(|v| {
                v["listeners"][1]["routes"][0]["rules"][0]["matches"][0]["path"] =
                    yaml("{type: Exact, value: /x}")
            }),
        ),
        (
            "http_with_grpc",
            error_after(|v| rule0(v)["matches"][0]["grpc"] = yaml("{service: a.B}")),
        ),
        (
            "mirror_percent",
            error_after(|v| rule0(v)["filters"][3]["percent"] = yaml("150")),
        ),
        (
            "client_cert_without_key",
            error_after(|v| {
                v["backends"]["secure"]["tls"]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("clientKeyPem")
                    .map(drop)
                    .unwrap()
            }),
        ),
        (
            "bad_endpoint",
            error_after(|v| v["backends"]["web"]["endpoints"][0]["address"] = yaml("localhost")),
        ),
        (
            "ready_but_not_serving",
            error_after(|v| v["backends"]["web"]["endpoints"][0]["serving"] = yaml("false")),
        ),
        (
            "connect_timeout_too_long",
            error_after(|v| v["backends"]["web"]["connectTimeout"] = yaml("2m")),
        ),
        (
            "several_errors",
            error_after(|v| {
                v["listeners"][0]["port"] = yaml("0");
                v["backends"]["secure"]["tls"]["hostname"] = yaml("'not a name'");
            }),
        ),
    ];
    let report: String = cases
        .iter()
        .map(|(name, err)| format!("{name}: {err}\n"))
        .collect();
    insta::assert_snapshot!(report);
}
