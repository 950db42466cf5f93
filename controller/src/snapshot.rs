//! The [`Snapshot`]: every input translation reads, at one moment, plus the controller's options.
//!
//! Copied from the model the watcher keeps ([`crate::watch::Objects`]), or read from a
//! multi-document YAML file by the golden tests ([`Snapshot::from_yaml`], in
//! [`crate::snapshot_yaml`]), through the same edge conversion ([`crate::kinds`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::ObjectKey;
use crate::model::core::{ConfigMap, EndpointSlice, Namespace, Secret, Service};
use crate::model::gateway::{Gateway, GatewayClass, ListenerSet, ReferenceGrant};
use crate::model::policy::BackendTlsPolicy;
use crate::model::route::{GrpcRoute, HttpRoute, TcpRoute, TlsRoute, UdpRoute};

/// Options that shape translation output (they are inputs too: translation stays pure).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Options {
    /// The controllerName this controller owns.
    pub controller_name: String,
    /// Image of generated data-plane Deployments.
    pub dataplane_image: String,
    /// URL data planes dial for their config.
    pub config_url: String,
    /// The config CA's certificate (PEM) data planes verify the config server with; `None`
    /// when the config server is plain HTTP (`--config-plaintext`).
    pub config_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controller_name: crate::DEFAULT_CONTROLLER_NAME.into(),
            dataplane_image: format!(
                "ghcr.io/pylon-dev/pylon-dataplane:{}",
                env!("CARGO_PKG_VERSION")
            ),
            // No CA is known without a cluster, so the default (golden tests) is the plaintext
            // mode; the binary defaults to TLS with the CA from its Secret.
            config_url: "http://pylon-controller.pylon-system.svc:18000".into(),
            config_ca: None,
        }
    }
}

/// Every input of translation. Maps are ordered so output is deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Options.
    pub options: Options,
    /// GatewayClasses by name.
    pub gateway_classes: BTreeMap<String, Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: BTreeMap<ObjectKey, Arc<Gateway>>,
    /// ListenerSets.
    pub listener_sets: BTreeMap<ObjectKey, Arc<ListenerSet>>,
    /// HTTPRoutes.
    pub http_routes: BTreeMap<ObjectKey, Arc<HttpRoute>>,
    /// GRPCRoutes.
    pub grpc_routes: BTreeMap<ObjectKey, Arc<GrpcRoute>>,
    /// TLSRoutes.
    pub tls_routes: BTreeMap<ObjectKey, Arc<TlsRoute>>,
    /// TCPRoutes.
    pub tcp_routes: BTreeMap<ObjectKey, Arc<TcpRoute>>,
    /// UDPRoutes.
    pub udp_routes: BTreeMap<ObjectKey, Arc<UdpRoute>>,
    /// ReferenceGrants.
    pub reference_grants: BTreeMap<ObjectKey, Arc<ReferenceGrant>>,
    /// Services.
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// Secrets.
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Arc<Namespace>>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: BTreeMap<ObjectKey, Arc<BackendTlsPolicy>>,
    /// ConfigMaps (CA bundles).
    pub config_maps: BTreeMap<ObjectKey, Arc<ConfigMap>>,
    /// Pylon GatewayParameters.
    pub parameters: BTreeMap<ObjectKey, Arc<crate::model::params::GatewayParametersSpec>>,
}

impl Snapshot {
    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .map(|n| n.meta.labels.clone())
            .unwrap_or_default()
    }
}
