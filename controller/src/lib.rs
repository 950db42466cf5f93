//! Pylon's controller: watch → snapshot → translate → status / provision / serve config.
//!
//! The pure core is [`translate::translate`] over a [`snapshot::Snapshot`] built from the
//! [`model`]; everything that talks to the API server or the network is a thin shell around it.
//! What it sends data planes is made of `pylon_config` types (the contract crate the data plane
//! loads and validates them with), so the controller does not build the proxy itself.
#![forbid(unsafe_code)]

pub mod features;
pub mod kinds;
pub mod model;
pub mod naming;
pub mod provision;
pub mod snapshot;
pub mod snapshot_yaml;
pub mod translate;

/// The controllerName Pylon answers to by default.
pub const DEFAULT_CONTROLLER_NAME: &str = "pylon.dev/gateway-controller";
pub mod admin;
pub mod auth;
pub mod config_ca;
pub mod config_hub;
pub mod config_server;
pub mod config_tls;
pub mod dataplane_pods;
pub mod first_status;
pub mod install_check;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod serving_status;
pub mod status;
pub mod status_writer;
#[cfg(test)]
mod test_fixtures;
pub mod version;
pub mod watch;
