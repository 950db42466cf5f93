//! A Pod's `/etc/resolv.conf` and `/etc/hosts`, per its dnsPolicy, dnsConfig, hostname,
//! subdomain and hostAliases (the kubelet's rules).

use k8s_openapi::api::core::v1::{Pod, PodSpec};

/// Parses a resolv.conf into (nameservers, searches, options).
fn parse(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (vec![], vec![], vec![]);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => ns.extend(words.next().map(str::to_owned)),
            Some("search" | "domain") => search = words.map(str::to_owned).collect(),
            Some("options") => opts.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// The Pod's resolv.conf. `ClusterFirst` (the default) points at cluster DNS with the
/// namespace's search path; `Default` inherits the host's; `None` uses only `dnsConfig`, whose
/// nameservers and searches are appended and whose options override by name.
pub fn resolv_conf(
    spec: Option<&PodSpec>,
    host: &str,
    namespace: &str,
    dns: &str,
    domain: &str,
) -> String {
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let (mut ns, mut search, mut opts) = match policy {
        "Default" => parse(host),
        "None" => (vec![], vec![], vec![]),
        _ => (
            vec![dns.to_owned()],
            vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_owned(),
            ],
            vec!["ndots:5".to_owned()],
        ),
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        ns.extend(cfg.nameservers.iter().flatten().cloned());
        search.extend(cfg.searches.iter().flatten().cloned());
        for o in cfg.options.iter().flatten() {
            let rendered = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or("")),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.as_deref().unwrap_or("");
            opts.retain(|existing| existing.split(':').next() != Some(name));
            opts.push(rendered);
        }
    }
    let mut out = String::new();
    for n in ns.iter().take(3) {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// The Pod's /etc/hosts: localhost, the Pod's own names, then hostAliases.
pub fn hosts_file(pod: &Pod, pod_ip: &str, pod_name: &str, domain: &str) -> String {
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod_name.to_owned());
    let mut own = hostname.clone();
    if let (Some(sub), Some(ns)) = (
        spec.and_then(|s| s.subdomain.as_deref()),
        pod.metadata.namespace.as_deref(),
    ) {
        own = format!("{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}");
    }
    let mut out = format!(
        "# Kubernetes-managed hosts file (pylon-podlet).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t{own}\n"
    );
    for alias in spec
        .and_then(|s| s.host_aliases.as_ref())
        .into_iter()
        .flatten()
    {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{names}\n",
            alias.ip
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn policies() {
        let host = "nameserver 10.255.255.53\nsearch example.org\noptions edns0\n";
        assert_eq!(
            resolv_conf(None, host, "infra", "10.96.0.10", "cluster.local"),
            "nameserver 10.96.0.10\nsearch infra.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        let default = spec(serde_json::json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(Some(&default), host, "n", "d", "c"), host);
        let custom = spec(serde_json::json!({
            "containers": [], "dnsPolicy": "ClusterFirst",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["x.y"], "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}
        }));
        assert_eq!(
            resolv_conf(Some(&custom), host, "n", "10.96.0.10", "cl"),
            "nameserver 10.96.0.10\nnameserver 1.2.3.4\nsearch n.svc.cl svc.cl cl x.y\noptions ndots:2 rotate\n"
        );
        let none = spec(
            serde_json::json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"]}}),
        );
        assert_eq!(
            resolv_conf(Some(&none), host, "n", "d", "c"),
            "nameserver 9.9.9.9\n"
        );
    }

    #[test]
    fn hosts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [], "hostname": "h", "subdomain": "s",
                     "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["a", "b"]}]}
        }))
        .unwrap();
        let text = hosts_file(&pod, "10.244.1.1", "p", "cluster.local");
        assert!(
            text.contains("10.244.1.1\th.s.ns.svc.cluster.local\th\n"),
            "{text}"
        );
        assert!(text.contains("10.1.1.1\ta\tb\n"), "{text}");
        let plain: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}})).unwrap();
        assert!(hosts_file(&plain, "10.244.1.1", "p", "cl").contains("10.244.1.1\tp\n"));
    }
}
