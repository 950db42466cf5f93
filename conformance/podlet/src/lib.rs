//! The podlet: a kubelet stand-in for Pylon's local test cluster.
//! Runs each Pod bound to its Node as processes in the Pod's own network and mount namespaces.
//!
//! Flow: `manager` watches this node's Pods and runs one `pod` worker per Pod; a worker sets up
//! the sandbox (`ipam`, `netns`, `volumes`, `dns`), runs each container through `container`
//! (which re-executes this binary as the `launch`er to enter the namespaces), and publishes
//! `status`. Alongside: `node` (registration, heartbeat), `lb` (LoadBalancer addresses),
//! `server` (the logs endpoint, using `logquery`) and `cleanup`.
//!
//! Pure parts (image mapping, environment and argv, IP pools, log queries, status, DNS files)
//! are unit-tested; `tests/netns.rs` and `tests/apiserver.rs` (root only) exercise the rest.
#![forbid(unsafe_code)]

pub mod cleanup;
pub mod container;
pub mod context;
pub mod dns;
pub mod environ;
pub mod hostpaths;
pub mod images;
pub mod ipam;
pub mod launch;
pub mod lb;
pub mod logquery;
pub mod manager;
pub mod netns;
pub mod node;
pub mod pod;
pub mod probe;
pub mod server;
pub mod status;
pub mod volumes;
