//! Pod networking: one network namespace per Pod, joined to the node's bridge by a veth pair.
//!
//! Uses the `ip` tool (iproute2) so what the podlet does can be reproduced and inspected by hand
//! (`ip netns list`, `ip -n <ns> addr`).

use std::net::Ipv4Addr;
use std::process::Command;

/// Errors running a networking command.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("running {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("bridge {bridge} is not usable: {reason}")]
    Bridge { bridge: String, reason: String },
}

/// Runs a command, returning stdout, or an error carrying the command line and stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The names of one Pod's network objects, derived from its IP (unique among live Pods) and a
/// prefix (tests use their own so they never clash with a running podlet).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodNet {
    pub netns: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
}

impl PodNet {
    pub fn new(prefix: &str, ip: Ipv4Addr) -> Self {
        let hex = format!("{:08x}", u32::from(ip));
        Self {
            netns: format!("{prefix}-{hex}"),
            // Interface names are limited to 15 bytes.
            host_veth: format!("{}{hex}", &prefix[..prefix.len().min(5)]),
            ip,
        }
    }

    /// `/run/netns/<name>`, the path `setns` opens.
    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }
}

/// Checks that the bridge exists, is up and carries the gateway address.
pub fn check_bridge(bridge: &str, gateway: Ipv4Addr) -> Result<(), NetError> {
    let err = |reason: String| NetError::Bridge {
        bridge: bridge.to_owned(),
        reason,
    };
    let out = run("ip", &["-o", "-4", "addr", "show", "dev", bridge])
        .map_err(|e| err(format!("{e} (the cluster script creates it)")))?;
    if !out.contains(&format!("inet {gateway}/")) {
        return Err(err(format!("it does not have address {gateway}")));
    }
    Ok(())
}

/// Creates the netns and veth pair: eth0 in the Pod with `ip/prefix_len` and a default route via
/// `gateway`; the host end on `bridge` with hairpin on (so a Pod can reach itself through a
/// Service IP).
pub fn setup(
    net: &PodNet,
    bridge: &str,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetError> {
    // A leftover from a crash would make `ip netns add` fail; start from nothing.
    teardown(net);
    let ns = net.netns.as_str();
    let tmp = format!("{}p", net.host_veth);
    let addr = format!("{}/{prefix_len}", net.ip);
    let gw = gateway.to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["netns", "add", ns],
        vec![
            "link",
            "add",
            &net.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &tmp,
        ],
        vec!["link", "set", &tmp, "netns", ns],
        vec!["-n", ns, "link", "set", &tmp, "name", "eth0"],
        vec!["-n", ns, "addr", "add", &addr, "dev", "eth0"],
        vec!["-n", ns, "link", "set", "lo", "up"],
        vec!["-n", ns, "link", "set", "eth0", "up"],
        vec!["-n", ns, "route", "add", "default", "via", &gw],
        vec!["link", "set", &net.host_veth, "master", bridge],
        vec![
            "link",
            "set",
            &net.host_veth,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ],
        vec!["link", "set", &net.host_veth, "up"],
    ];
    for step in steps {
        if let Err(e) = run("ip", &step) {
            teardown(net);
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the netns and veth, then the host's connection-tracking entries that lead to the
/// Pod's address; missing objects are fine (teardown is idempotent).
///
/// Why the conntrack entries: a Service connection to the Pod that was cut without a full
/// close (the Pod's network went away under it) leaves its NAT mapping behind, in an
/// established or closing state, for up to a day. A new connection from the same source port
/// to the same Service address then matches that entry, which conntrack does not re-open as it
/// does a TIME_WAIT one: its SYN follows the old mapping to the address nobody answers, and the
/// client sees a timeout or "no route to host" although the Service has live endpoints. kube-
/// proxy clears such entries only for UDP; CNI plugins clear them for a deleted Pod IP.
pub fn teardown(net: &PodNet) {
    let _ = run("ip", &["link", "del", &net.host_veth]);
    let _ = run("ip", &["netns", "del", &net.netns]);
    // Exits 1 when nothing matched; either way nothing is left to do.
    let _ = run("conntrack", &["-D", "--reply-src", &net.ip.to_string()]);
}

/// The Pod IP a netns name made by [`PodNet::new`] encodes.
pub fn netns_ip(prefix: &str, name: &str) -> Option<Ipv4Addr> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('-')?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(Ipv4Addr::from)
}

/// Every netns whose name starts with `prefix-` (for cleanup of a previous run).
pub fn list_netns(prefix: &str) -> Vec<String> {
    let out = run("ip", &["netns", "list"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits() {
        let net = PodNet::new("pylon", Ipv4Addr::new(10, 244, 255, 254));
        assert_eq!(net.netns, "pylon-0af4fffe");
        assert_eq!(net.host_veth, "pylon0af4fffe");
        assert!(format!("{}p", net.host_veth).len() <= 15);
        assert_eq!(net.netns_path(), "/run/netns/pylon-0af4fffe");
        assert_eq!(netns_ip("pylon", &net.netns), Some(net.ip));
        assert_eq!(netns_ip("pylon", "pylon-xyz"), None);
        assert_eq!(netns_ip("pyt", &net.netns), None);
    }
}
