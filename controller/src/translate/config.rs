//! The data-plane configuration translation produces for one Gateway, and endpoint resolution.
//!
//! Until the data plane's `config` module lands this is the controller's own, serializable view;
//! it is what the config server streams (see api-docs/config-protocol.md).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::route::{Filter, GrpcMatch, HttpMatch, HttpTimeouts};
use crate::snapshot::Snapshot;

/// Configuration for one Gateway's data plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GatewayConfig {
    /// Listeners that are accepted, in spec order.
    pub listeners: Vec<ListenerConfig>,
    /// Backend clusters the routes refer to, by cluster name.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// One listener and the routes attached to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListenerConfig {
    /// Listener name.
    pub name: String,
    /// Port.
    pub port: i32,
    /// HTTP or HTTPS.
    pub protocol: String,
    /// Hostname, if restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Server certificates for HTTPS.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// HTTPRoutes, ordered by namespace/name.
    pub http_routes: Vec<RouteConfig<HttpMatch>>,
    /// GRPCRoutes, ordered by namespace/name.
    pub grpc_routes: Vec<RouteConfig<GrpcMatch>>,
}

/// A PEM certificate chain and key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Certificate {
    /// Source Secret (namespace/name).
    pub secret: String,
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
}

/// A route as attached to one listener.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteConfig<M> {
    /// namespace/name of the route.
    pub name: String,
    /// Effective hostnames (route ∩ listener); empty matches any host.
    pub hostnames: Vec<String>,
    /// Valid rules, in spec order.
    pub rules: Vec<RuleConfig<M>>,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleConfig<M> {
    /// Matches (any of).
    pub matches: Vec<M>,
    /// Filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Weighted backends; an empty list (or all invalid) means HTTP 500.
    pub backends: Vec<BackendConfig>,
    /// Timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpTimeouts>,
}

/// A weighted backend; `cluster: None` stands for an unresolved reference (requests get 500).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendConfig {
    /// Cluster name, or `None` when the reference did not resolve.
    pub cluster: Option<String>,
    /// Weight.
    pub weight: i32,
    /// Per-backend filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
}

/// A backend Service port.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Service port.
    pub port: i32,
    /// Upstream protocol: http1, h2c (kubernetes.io/h2c or GRPCRoute) or ws.
    pub protocol: String,
}

/// Endpoint addresses ("ip:port") per cluster, sorted.
pub type Endpoints = BTreeMap<String, Vec<String>>;

/// The cluster name of a Service port.
pub fn cluster_name(namespace: &str, service: &str, port: i32) -> String {
    format!("{namespace}/{service}:{port}")
}

/// Resolves the ready endpoints of every cluster from the EndpointSlices.
pub fn resolve_endpoints(s: &Snapshot, clusters: &BTreeMap<String, ClusterConfig>) -> Endpoints {
    let mut out = Endpoints::new();
    for (name, c) in clusters {
        let key = crate::model::ObjectKey::new(c.namespace.clone(), c.service.clone());
        let port_name = s
            .services
            .get(&key)
            .and_then(|svc| svc.ports.iter().find(|p| p.port == c.port))
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let mut addrs: Vec<String> = s
            .endpoint_slices
            .values()
            .filter(|e| e.meta.namespace == c.namespace && e.service_name == c.service)
            .flat_map(|e| {
                let target = e.ports.iter().find(|p| p.name == port_name).map(|p| p.port);
                e.endpoints
                    .iter()
                    .filter(|ep| ep.ready)
                    .flat_map(|ep| ep.addresses.iter())
                    .filter_map(move |a| target.map(|t| socket(a, t)))
            })
            .collect();
        addrs.sort();
        addrs.dedup();
        out.insert(name.clone(), addrs);
    }
    out
}

fn socket(addr: &str, port: i32) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}
