//! Core Kubernetes objects translation reads: Service, EndpointSlice, Secret, Namespace.

use serde::{Deserialize, Serialize};

use super::Meta;

/// A Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    /// Metadata.
    pub meta: Meta,
    /// ClusterIP, NodePort, LoadBalancer or ExternalName.
    pub service_type: String,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Load-balancer ingress addresses (IPs or hostnames), in status order.
    pub load_balancer: Vec<LoadBalancerAddress>,
    /// [`CONNECT_TIMEOUT_ANNOTATION`], parsed on conversion: only the value is kept, not the
    /// annotations (a Service's can be large: `kubectl.kubernetes.io/last-applied-configuration`).
    pub connect_timeout: Option<Result<pylon_config::Duration, InvalidAnnotation>>,
}

/// The Service annotation that sets its backends' connect timeout (a Gateway API duration).
pub const CONNECT_TIMEOUT_ANNOTATION: &str = "pylon.dev/connect-timeout";
/// What [`CONNECT_TIMEOUT_ANNOTATION`] accepts (`pylon_config::check_connect_timeout`).
pub const CONNECT_TIMEOUT_ACCEPTS: &str =
    "a Gateway API duration (as HTTPRoute timeouts) more than 0 and at most 60s, e.g. 250ms or 2s";

/// A Pylon annotation whose value does not parse, with the value and why.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("Service annotation {name} {value:?}: {error}; accepted: {accepts}")]
pub struct InvalidAnnotation {
    /// The annotation.
    pub name: &'static str,
    /// What values it accepts.
    pub accepts: &'static str,
    /// Its value as written.
    pub value: String,
    /// What is wrong with it.
    #[serde(serialize_with = "as_text")]
    pub error: AnnotationError,
}

/// Why an annotation's value is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AnnotationError {
    /// Not a Gateway API duration.
    #[error("{0}")]
    Duration(#[from] pylon_config::duration::DurationError),
    /// A duration, but not one a connect timeout can be.
    #[error("a connect timeout {0}")]
    ConnectTimeout(#[from] pylon_config::ConnectTimeoutError),
}

fn as_text<S: serde::Serializer>(e: &AnnotationError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Port name ("" if unnamed).
    pub name: String,
    /// The Service port.
    pub port: i32,
    /// `appProtocol`, e.g. kubernetes.io/h2c.
    pub app_protocol: Option<String>,
}

/// One load-balancer ingress address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerAddress {
    /// IPAddress or Hostname.
    pub kind: String,
    /// The address.
    pub value: String,
}

/// An EndpointSlice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointSlice {
    /// Metadata.
    pub meta: Meta,
    /// The Service it belongs to (label kubernetes.io/service-name).
    pub service_name: String,
    /// Ports.
    pub ports: Vec<EndpointPort>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A port of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointPort {
    /// Name, matching the Service port's name.
    pub name: String,
    /// The target port.
    pub port: i32,
}

/// One endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Addresses.
    pub addresses: Vec<String>,
    /// Its conditions (ready, serving, terminating) as the one state they make.
    pub state: pylon_config::EndpointState,
}

/// A Secret; only the keys Pylon uses are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Metadata.
    pub meta: Meta,
    /// `type`.
    pub secret_type: String,
    /// `tls.crt` as text, if present and UTF-8.
    pub tls_crt: Option<String>,
    /// `tls.key` as text, if present and UTF-8.
    pub tls_key: Option<String>,
}

/// A Namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// Metadata (namespace empty, name = the namespace).
    pub meta: Meta,
}

/// A ConfigMap; only `ca.crt` is kept (BackendTLSPolicy CA bundles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigMap {
    /// Metadata.
    pub meta: Meta,
    /// `data["ca.crt"]`, if present.
    pub ca_crt: Option<String>,
}
