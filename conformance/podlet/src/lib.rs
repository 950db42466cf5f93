//! The podlet: a kubelet stand-in for Pylon's local test cluster.
//! Runs each Pod bound to its Node as processes in the Pod's own network and mount namespaces.
//!
//! Pure parts (image mapping, environment and argv, IP pools, log queries, status) are
//! unit-tested; the parts that need root are exercised by `tests/netns.rs`.
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
