//! Node registration and heartbeat: creates this podlet's Node, reports its status (Ready,
//! addresses, capacity, daemon endpoint, node info) and renews its Lease in kube-node-lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::context::Config;

/// How often status and Lease are renewed (the kubelet's defaults are 10s for the Lease).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// When this podlet process started.
fn started() -> Timestamp {
    static STARTED: std::sync::OnceLock<Timestamp> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Timestamp::now)
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

fn memory_kib() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// The Node's status as a merge-patch body; `now` is the heartbeat time, `since` when this
/// podlet started (the conditions' last transition).
pub fn status_patch(cfg: &Config, now: Timestamp, since: Timestamp) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_kib()),
        // Above the kubelet default (110): a conformance run creates many short-lived Pods.
        "pods": "250",
        "ephemeral-storage": "10Gi",
    });
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now.to_string(),
            // The conditions only change when the podlet (re)starts.
            "lastTransitionTime": since.to_string(),
        })
    };
    json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": cfg.node_ip.to_string()},
                {"type": "Hostname", "address": cfg.node_name},
            ],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "podlet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "podlet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "podlet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "pylon-podlet is posting ready status"),
            ],
            "nodeInfo": {
                "machineID": read_trim("/etc/machine-id"),
                "systemUUID": read_trim("/etc/machine-id"),
                "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
                "osImage": os_image(),
                "containerRuntimeVersion": concat!("pylon-podlet://", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": "v1.35.0",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
        }
    })
}

/// Creates the Node if needed and publishes its status once. Returns the Node's uid.
pub async fn register(client: &kube::Client, cfg: &Config) -> Result<String, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let existing = nodes.get_opt(&cfg.node_name).await?;
    let node = match existing {
        Some(n) => n,
        None => {
            let node: Node = serde_json::from_value(json!({
                "metadata": {
                    "name": cfg.node_name,
                    "labels": {
                        "kubernetes.io/hostname": cfg.node_name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                        "node.kubernetes.io/instance-type": "pylon-podlet",
                    },
                    "annotations": {"pylon.dev/host": hostname()},
                },
                "spec": {"podCIDR": cfg.pod_cidr.to_string(), "podCIDRs": [cfg.pod_cidr.to_string()]},
            }))
            .map_err(kube::Error::SerdeError)?;
            nodes.create(&PostParams::default(), &node).await?
        }
    };
    heartbeat(client, cfg, node.metadata.uid.as_deref().unwrap_or("")).await?;
    Ok(node.metadata.uid.unwrap_or_default())
}

/// Patches the Node status and renews the Lease.
pub async fn heartbeat(
    client: &kube::Client,
    cfg: &Config,
    node_uid: &str,
) -> Result<(), kube::Error> {
    let now = Timestamp::now();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&status_patch(cfg, now, started())),
        )
        .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": cfg.node_name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": cfg.node_name, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": cfg.node_name,
            "leaseDurationSeconds": 40,
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
        },
    });
    leases
        .patch(
            &cfg.node_name,
            &PatchParams::apply("pylon-podlet").force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

/// Heartbeats forever; errors are logged and retried on the next tick.
pub async fn heartbeat_loop(client: kube::Client, cfg: Config, mut node_uid: String) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    loop {
        tick.tick().await;
        match heartbeat(&client, &cfg, &node_uid).await {
            Ok(()) => {}
            // Someone deleted the Node: register it again, as the kubelet does.
            Err(kube::Error::Api(e)) if e.code == 404 => match register(&client, &cfg).await {
                Ok(uid) => {
                    tracing::info!(node = %cfg.node_name, "node re-registered");
                    node_uid = uid;
                }
                Err(e) => tracing::warn!(error = %e, "re-registering node failed"),
            },
            Err(e) => tracing::warn!(error = %e, "node heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_ready_addresses_and_endpoint() {
        let cfg = Config {
            node_name: "pylon-node".into(),
            node_ip: "10.244.0.1".parse().unwrap(),
            bridge: "pylon0".into(),
            pod_cidr: "10.244.0.0/16".parse().unwrap(),
            lb_cidr: "10.245.0.0/24".parse().unwrap(),
            cluster_dns: "10.96.0.10".into(),
            cluster_domain: "cluster.local".into(),
            state_dir: "/tmp/x".into(),
            port: 10250,
            net_prefix: "pyt".into(),
            self_exe: "/bin/true".into(),
        };
        let since: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let patch = status_patch(&cfg, now, since);
        // It must deserialize as a NodeStatus (field names and types right).
        let status: k8s_openapi::api::core::v1::NodeStatus =
            serde_json::from_value(patch["status"].clone()).unwrap();
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_heartbeat_time.unwrap().0, now);
        assert_eq!(ready.last_transition_time.unwrap().0, since);
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        let addresses = status.addresses.unwrap();
        assert_eq!(
            (addresses[0].type_.as_str(), addresses[0].address.as_str()),
            ("InternalIP", "10.244.0.1")
        );
        assert!(status.capacity.unwrap().contains_key("pods"));
        assert_eq!(status.node_info.unwrap().operating_system, "linux");
    }
}
