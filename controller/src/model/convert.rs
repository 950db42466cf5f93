//! The edge: converts generated Gateway API (`pylon-gateway-types`) and `k8s-openapi` types into Pylon's model.
//!
//! Gateway API specs go through serde: the model's field names follow the API's JSON, and its
//! `#[serde(default)]`s are the CRD defaults, so one conversion applies them all.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::ObjectMeta;
use pylon_gateway_types as gw;
use serde::de::DeserializeOwned;

use super::Meta;
use super::core::{
    AnnotationError, CONNECT_TIMEOUT_ACCEPTS, CONNECT_TIMEOUT_ANNOTATION, ConfigMap, Endpoint,
    EndpointPort, EndpointSlice, InvalidAnnotation, LoadBalancerAddress, Namespace, Secret,
    Service, ServicePort,
};
use super::gateway::{
    Gateway, GatewayClass, GrantFrom, GrantTo, ListenerSet, ParametersRef, ReferenceGrant,
};
use super::policy::BackendTlsPolicy;
use super::route::{
    GrpcRoute, HttpRoute, Route, RouteRule, RouteSpec, TcpRoute, TlsRoute, UdpRoute,
};

/// An object that could not be converted; it is logged and skipped, never fatal.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {namespace}/{name}: {message}")]
pub struct ConvertError {
    /// Kind of the object.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

fn meta(m: &ObjectMeta) -> Meta {
    Meta {
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        generation: m.generation.unwrap_or(0),
        uid: m.uid.clone().unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        creation_timestamp: m
            .creation_timestamp
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
    }
}

fn error(kind: &'static str, m: &Meta, message: impl ToString) -> ConvertError {
    ConvertError {
        kind,
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        message: message.to_string(),
    }
}

/// Re-reads a generated spec as a model spec, applying the model's serde defaults.
fn via_json<T: serde::Serialize, M: DeserializeOwned>(
    kind: &'static str,
    m: &Meta,
    spec: &T,
) -> Result<M, ConvertError> {
    let value = serde_json::to_value(spec).map_err(|e| error(kind, m, e))?;
    serde_json::from_value(value).map_err(|e| error(kind, m, e))
}

/// Converts a GatewayClass.
pub fn gateway_class(o: &gw::gatewayclasses::GatewayClass) -> GatewayClass {
    GatewayClass {
        meta: meta(&o.metadata),
        controller_name: o.spec.controller_name.clone(),
        parameters_ref: o.spec.parameters_ref.as_ref().map(|p| ParametersRef {
            group: p.group.clone(),
            kind: p.kind.clone(),
            name: p.name.clone(),
            namespace: p.namespace.clone(),
        }),
    }
}

/// Converts a Gateway.
pub fn gateway(o: &gw::gateways::Gateway) -> Result<Gateway, ConvertError> {
    let m = meta(&o.metadata);
    let spec = via_json("Gateway", &m, &o.spec)?;
    Ok(Gateway { meta: m, spec })
}

/// Converts a ListenerSet.
pub fn listener_set(o: &gw::listenersets::ListenerSet) -> Result<ListenerSet, ConvertError> {
    let m = meta(&o.metadata);
    let spec = via_json("ListenerSet", &m, &o.spec)?;
    Ok(ListenerSet { meta: m, spec })
}

fn route<G: serde::Serialize, R: RouteRule + DeserializeOwned>(
    om: &ObjectMeta,
    spec: &G,
) -> Result<Route<R>, ConvertError> {
    let m = meta(om);
    let kind = R::KIND;
    let spec: RouteSpec<R> = via_json(kind, &m, spec)?;
    Ok(Route { meta: m, spec })
}

/// Converts an HTTPRoute.
pub fn http_route(o: &gw::httproutes::HttpRoute) -> Result<HttpRoute, ConvertError> {
    route(&o.metadata, &o.spec)
}

/// Converts a GRPCRoute.
pub fn grpc_route(o: &gw::grpcroutes::GrpcRoute) -> Result<GrpcRoute, ConvertError> {
    route(&o.metadata, &o.spec)
}

/// Converts a TLSRoute.
pub fn tls_route(o: &gw::tlsroutes::TlsRoute) -> Result<TlsRoute, ConvertError> {
    route(&o.metadata, &o.spec)
}

/// Converts a TCPRoute.
pub fn tcp_route(o: &gw::tcproutes::TcpRoute) -> Result<TcpRoute, ConvertError> {
    route(&o.metadata, &o.spec)
}

/// Converts a UDPRoute.
pub fn udp_route(o: &gw::udproutes::UdpRoute) -> Result<UdpRoute, ConvertError> {
    route(&o.metadata, &o.spec)
}

/// Converts a ReferenceGrant.
pub fn reference_grant(o: &gw::referencegrants::ReferenceGrant) -> ReferenceGrant {
    ReferenceGrant {
        meta: meta(&o.metadata),
        from: o
            .spec
            .from
            .iter()
            .map(|f| GrantFrom {
                group: f.group.clone(),
                kind: f.kind.clone(),
                namespace: f.namespace.clone(),
            })
            .collect(),
        to: o
            .spec
            .to
            .iter()
            .map(|t| GrantTo {
                group: t.group.clone(),
                kind: t.kind.clone(),
                name: t.name.clone(),
            })
            .collect(),
    }
}

/// Converts a Service.
pub fn service(o: &core::Service) -> Service {
    let spec = o.spec.clone().unwrap_or_default();
    let ingress = o
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let connect_timeout = o
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONNECT_TIMEOUT_ANNOTATION))
        .map(|v| connect_timeout(v));
    Service {
        connect_timeout,
        meta: meta(&o.metadata),
        service_type: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                name: p.name.unwrap_or_default(),
                port: p.port,
                app_protocol: p.app_protocol,
            })
            .collect(),
        load_balancer: ingress
            .into_iter()
            .filter_map(|i| match (i.ip, i.hostname) {
                (Some(ip), _) => Some(LoadBalancerAddress {
                    kind: "IPAddress".into(),
                    value: ip,
                }),
                (None, Some(h)) => Some(LoadBalancerAddress {
                    kind: "Hostname".into(),
                    value: h,
                }),
                _ => None,
            })
            .collect(),
    }
}

/// Parses a [`CONNECT_TIMEOUT_ANNOTATION`] value.
fn connect_timeout(value: &str) -> Result<pylon_config::Duration, InvalidAnnotation> {
    let parsed = value
        .parse::<pylon_config::Duration>()
        .map_err(AnnotationError::from)
        .and_then(|d| pylon_config::check_connect_timeout(d).map_err(AnnotationError::from));
    parsed.map_err(|error| InvalidAnnotation {
        name: CONNECT_TIMEOUT_ANNOTATION,
        accepts: CONNECT_TIMEOUT_ACCEPTS,
        value: value.to_string(),
        error,
    })
}

/// Converts an EndpointSlice; a slice without its service-name label is an error.
pub fn endpoint_slice(o: &discovery::EndpointSlice) -> Result<EndpointSlice, ConvertError> {
    let m = meta(&o.metadata);
    let service_name = m
        .labels
        .get("kubernetes.io/service-name")
        .cloned()
        .ok_or_else(|| {
            error(
                "EndpointSlice",
                &m,
                "missing label kubernetes.io/service-name",
            )
        })?;
    Ok(EndpointSlice {
        service_name,
        ports: o
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.unwrap_or_default(),
                    port: p.port?,
                })
            })
            .collect(),
        endpoints: o
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.as_ref();
                Endpoint {
                    addresses: e.addresses.clone(),
                    state: pylon_config::EndpointState::from_conditions(
                        c.and_then(|c| c.ready),
                        c.and_then(|c| c.serving),
                        c.and_then(|c| c.terminating),
                    ),
                }
            })
            .collect(),
        meta: m,
    })
}

/// Converts a Secret, keeping only `tls.crt` and `tls.key`.
pub fn secret(o: &core::Secret) -> Secret {
    let data = o.data.clone().unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Secret {
        meta: meta(&o.metadata),
        secret_type: o.type_.clone().unwrap_or_else(|| "Opaque".into()),
        tls_crt: text("tls.crt"),
        tls_key: text("tls.key"),
    }
}

/// Converts a BackendTLSPolicy.
pub fn backend_tls_policy(
    o: &gw::backendtlspolicies::BackendTlsPolicy,
) -> Result<BackendTlsPolicy, ConvertError> {
    let m = meta(&o.metadata);
    let spec = via_json("BackendTLSPolicy", &m, &o.spec)?;
    Ok(BackendTlsPolicy { meta: m, spec })
}

/// Converts a ConfigMap, keeping only `ca.crt`.
pub fn config_map(o: &core::ConfigMap) -> ConfigMap {
    ConfigMap {
        meta: meta(&o.metadata),
        ca_crt: o.data.as_ref().and_then(|d| d.get("ca.crt").cloned()),
    }
}

/// Converts a Namespace.
pub fn namespace(o: &core::Namespace) -> Namespace {
    Namespace {
        meta: meta(&o.metadata),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_timeout_annotation_is_parsed_once_with_its_reason() {
        let ms = |v: &str| connect_timeout(v).map(|d| d.0.as_millis());
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1m"), Ok(60_000));
        let message = |v: &str| connect_timeout(v).unwrap_err().to_string();
        assert_eq!(
            message("0s"),
            "Service annotation pylon.dev/connect-timeout \"0s\": a connect timeout must be \
             more than 0; accepted: a Gateway API duration (as HTTPRoute timeouts) more than 0 \
             and at most 60s, e.g. 250ms or 2s"
        );
        assert!(
            message("2m").contains(": a connect timeout 120s is more than the maximum of 60s;"),
            "{}",
            message("2m")
        );
        assert!(message("1.5s").contains("invalid duration \"1.5s\""));
    }
}
