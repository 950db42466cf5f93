//! The provisioner: one data plane (ServiceAccount, Deployment, Service) per Gateway.

pub mod apply;
pub mod render;
