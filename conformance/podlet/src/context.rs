//! What every part of the running podlet shares: configuration, the API client, the image
//! mapping, the Pod IP pool and the record of host paths it created.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::hostpaths::HostPaths;
use crate::images::ImageMap;
use crate::ipam::{Cidr, Pool};

/// The podlet's configuration (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    pub bridge: String,
    pub pod_cidr: Cidr,
    pub lb_cidr: Cidr,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub state_dir: PathBuf,
    pub port: u16,
    /// Prefix for netns and veth names (`pylon`; tests use `pyt`).
    pub net_prefix: String,
    /// The podlet's own executable, re-run as `launch` for each container.
    pub self_exe: PathBuf,
}

impl Config {
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }
    pub fn host_paths_record(&self) -> PathBuf {
        self.state_dir.join("created-paths")
    }
}

/// Shared state of a running podlet.
pub struct Ctx {
    pub cfg: Config,
    pub client: kube::Client,
    pub images: ImageMap,
    pub pod_ips: Mutex<Pool>,
    pub host_paths: HostPaths,
}

impl Ctx {
    pub fn new(cfg: Config, client: kube::Client, images: ImageMap) -> Self {
        // 10.244.0.0/24 is the node's own range (the bridge address lives there).
        let node_range = Cidr {
            addr: Ipv4Addr::from(u32::from(cfg.pod_cidr.addr)),
            len: 24.max(cfg.pod_cidr.len),
        };
        let pool = Pool::new(cfg.pod_cidr, vec![node_range]);
        let host_paths = HostPaths::new(cfg.host_paths_record());
        Self {
            cfg,
            client,
            images,
            pod_ips: Mutex::new(pool),
            host_paths,
        }
    }

    pub fn allocate_ip(&self) -> Result<Ipv4Addr, crate::ipam::IpamError> {
        self.pod_ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocate()
    }

    /// Claims a specific address; false if it is outside the pool or taken.
    pub fn claim_ip(&self, ip: Ipv4Addr) -> bool {
        self.pod_ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .claim(ip)
            .is_ok()
    }

    pub fn release_ip(&self, ip: Ipv4Addr) {
        self.pod_ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(ip)
    }
}
