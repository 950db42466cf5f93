//! A container's environment and argv, built the way the kubelet builds them.
//!
//! Pure: the Secrets and ConfigMaps a container references are fetched beforehand into
//! [`Refs`], so everything here is testable without a cluster.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// Errors building a container's environment; the message becomes the container's
/// `CreateContainerConfigError` status.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    #[error("env {var}: unsupported fieldRef {path:?}")]
    FieldPath { var: String, path: String },
    #[error("env {var}: {kind} {name:?} not found")]
    MissingObject {
        var: String,
        kind: &'static str,
        name: String,
    },
    #[error("env {var}: key {key:?} not found in {kind} {name:?}")]
    MissingKey {
        var: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("env {var}: resourceFieldRef is not supported")]
    ResourceField { var: String },
}

/// Facts about the Pod that fieldRefs can name and that are not in the Pod object yet.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
}

/// The Secrets and ConfigMaps (by name, then key) a Pod's containers reference.
/// `None` means the object does not exist.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// Services whose `*_SERVICE_HOST`-style variables the container gets: the `kubernetes`
    /// Service always, the Pod's namespace's Services unless `enableServiceLinks: false`.
    pub services: Vec<Service>,
}

/// Docker-links-style variables for Services, as the kubelet sets them
/// (`FOO_SERVICE_HOST`, `FOO_SERVICE_PORT[_NAME]`, `FOO_PORT`, `FOO_PORT_80_TCP[_PROTO|_PORT|_ADDR]`).
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.metadata.name.clone());
    sorted.dedup_by_key(|s| s.metadata.name.clone());
    let upper = |s: &str| s.to_uppercase().replace('-', "_");
    let mut env = vec![];
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or("");
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        if ip.is_empty() || ip == "None" || ports.is_empty() {
            continue;
        }
        let n = upper(svc.metadata.name.as_deref().unwrap_or(""));
        env.push((format!("{n}_SERVICE_HOST"), ip.to_owned()));
        env.push((format!("{n}_SERVICE_PORT"), ports[0].port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((
                    format!("{n}_SERVICE_PORT_{}", upper(name)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.as_deref().unwrap_or("TCP").to_owned()
        };
        env.push((
            format!("{n}_PORT"),
            format!(
                "{}://{ip}:{}",
                proto(&ports[0]).to_lowercase(),
                ports[0].port
            ),
        ));
        for p in ports {
            let proto = proto(p);
            let prefix = format!("{n}_PORT_{}_{}", p.port, proto.to_uppercase());
            env.push((
                prefix.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            env.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            env.push((format!("{prefix}_PORT"), p.port.to_string()));
            env.push((format!("{prefix}_ADDR"), ip.to_owned()));
        }
    }
    env
}

/// Builds the ordered environment of a container: KUBERNETES_SERVICE_*, envFrom, then env.
pub fn build_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    refs: &Refs,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    env.extend(service_env(&refs.services));
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, objects) = if let Some(s) = &from.secret_ref {
            ("Secret", &s.name, s.optional, &refs.secrets)
        } else if let Some(c) = &from.config_map_ref {
            ("ConfigMap", &c.name, c.optional, &refs.config_maps)
        } else {
            continue;
        };
        match objects.get(name).cloned().flatten() {
            Some(data) => {
                for (k, v) in data {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if optional == Some(true) => {}
            None => {
                return Err(EnvError::MissingObject {
                    var: format!("envFrom {prefix}"),
                    kind,
                    name: name.clone(),
                });
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    Some(field_ref(pod, facts, &var.name, &f.field_path)?)
                } else if let Some(s) = &from.secret_key_ref {
                    key_ref(
                        &var.name,
                        "Secret",
                        &s.name,
                        &s.key,
                        s.optional,
                        &refs.secrets,
                    )?
                } else if let Some(c) = &from.config_map_key_ref {
                    key_ref(
                        &var.name,
                        "ConfigMap",
                        &c.name,
                        &c.key,
                        c.optional,
                        &refs.config_maps,
                    )?
                } else if from.resource_field_ref.is_some() {
                    return Err(EnvError::ResourceField {
                        var: var.name.clone(),
                    });
                } else {
                    None
                }
            }
            (Some(v), None) => {
                let lookup: BTreeMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Some(expand(v, &|name| lookup.get(name).map(|s| s.to_string())))
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn field_ref(pod: &Pod, facts: &PodFacts, var: &str, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => facts.pod_ip.clone(),
        "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        other => {
            let label = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix("['"))
                    .and_then(|rest| rest.strip_suffix("']"))
            };
            if let Some(key) = label("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = label("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(EnvError::FieldPath {
                    var: var.into(),
                    path: path.into(),
                });
            }
        }
    };
    Ok(value)
}

fn key_ref(
    var: &str,
    kind: &'static str,
    name: &str,
    key: &str,
    optional: Option<bool>,
    objects: &BTreeMap<String, Option<BTreeMap<String, String>>>,
) -> Result<Option<String>, EnvError> {
    let optional = optional == Some(true);
    match objects.get(name).cloned().flatten() {
        None if optional => Ok(None),
        None => Err(EnvError::MissingObject {
            var: var.into(),
            kind,
            name: name.into(),
        }),
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::MissingKey {
                var: var.into(),
                kind,
                name: name.into(),
                key: key.into(),
            }),
        },
    }
}

/// Expands `$(VAR)` per Kubernetes rules: defined variables are substituted, undefined ones are
/// left as written, and `$$` escapes a `$`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The argv a container runs: the mapped executable, then `command[1..]` (command[0] is the
/// image entrypoint the executable replaces), then `args`, with `$(VAR)` expanded from `env`.
pub fn build_argv(exe: &Path, container: &Container, env: &[(String, String)]) -> Vec<String> {
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| lookup.get(name).map(|s| s.to_string());
    let mut argv = vec![exe.display().to_string()];
    for arg in container.command.iter().flatten().skip(1) {
        argv.push(expand(arg, &lookup));
    }
    for arg in container.args.iter().flatten() {
        argv.push(expand(arg, &lookup));
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "echo-1", "namespace": "infra", "labels": {"app": "echo"}},
            "spec": {"containers": [{
                "name": "c", "image": "echo",
                "command": ["/entry", "--port=$(PORT)", "$$(PORT)", "$(UNSET)"],
                "args": ["-conf", "/root/$(NAME)"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PORT", "value": "3000"},
                    {"name": "NAME", "value": "Corefile-$(PORT)"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}}
                ]
            }]}
        }))
        .unwrap()
    }

    fn refs() -> Refs {
        let mut refs = Refs::default();
        refs.secrets.insert(
            "s".into(),
            Some(BTreeMap::from([("pw".to_string(), "hunter2".to_string())])),
        );
        refs.config_maps.insert("gone".into(), None);
        refs
    }

    #[test]
    fn builds_env_and_argv() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let facts = PodFacts {
            pod_ip: "10.244.1.2".into(),
            host_ip: "10.244.0.1".into(),
            node_name: "n".into(),
        };
        let env = build_env(&pod, c, &facts, &refs()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD_NAME"), Some("echo-1"));
        assert_eq!(get("NAMESPACE"), Some("infra"));
        assert_eq!(get("IP"), Some("10.244.1.2"));
        assert_eq!(get("APP"), Some("echo"));
        assert_eq!(get("NAME"), Some("Corefile-3000"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        let argv = build_argv(Path::new("/bin/echo-basic"), c, &env);
        assert_eq!(
            argv,
            [
                "/bin/echo-basic",
                "--port=3000",
                "$(PORT)",
                "$(UNSET)",
                "-conf",
                "/root/Corefile-3000"
            ]
        );
    }

    #[test]
    fn missing_secret_is_an_error_naming_it() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let err = build_env(&pod, c, &PodFacts::default(), &Refs::default()).unwrap_err();
        assert_eq!(err.to_string(), "env PW: Secret \"s\" not found");
    }

    #[test]
    fn service_links_match_the_kubelets() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}
        }))
        .unwrap();
        let dns: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let env = service_env(&[svc, headless, dns]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get("KUBE_DNS_PORT_53_UDP"), Some("udp://10.96.0.10:53"));
        assert!(!env.iter().any(|(k, _)| k.starts_with("H_")));
    }

    #[test]
    fn expansion_rules() {
        let l = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)$(B)$$(A)$$$(A)$", &l), "x$(B)$(A)$x$");
        assert_eq!(expand("$(A", &l), "$(A");
    }
}
