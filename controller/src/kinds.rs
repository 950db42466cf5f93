//! The kinds translation reads, each described once: which API resource it is, how one of its
//! objects becomes a model entry ([`crate::model::convert`]), and where that entry lives in a
//! [`Snapshot`]. The watcher ([`crate::watch`]) and the YAML reader of the golden tests
//! ([`Snapshot::from_yaml`]) both go through [`Kind::convert`], so a cluster and a test file
//! can never disagree about what an object means.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::{ApiResource, ObjectMeta};
use kube::core::GroupVersionKind;
use pylon_gateway_types as gw;
use serde::de::DeserializeOwned;

use crate::model::convert::{self, ConvertError};
use crate::model::params::{
    GatewayParameters, GatewayParametersSpec, PARAMETERS_PLURAL, PYLON_GROUP,
};
use crate::model::{GATEWAY_GROUP, ObjectKey, core as m, gateway, policy, route};
use crate::snapshot::Snapshot;

/// What a change of an object can affect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Anything translation computes.
    Translation,
    /// Only the endpoints of backends already in the configs (EndpointSlices).
    Endpoints,
}

/// A key of a [`Snapshot`] map: cluster-scoped kinds are keyed by name, namespaced ones by
/// [`ObjectKey`].
pub trait Key: Ord + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The key of the object with this metadata.
    fn of(meta: &ObjectMeta) -> Self;
}

impl Key for String {
    fn of(meta: &ObjectMeta) -> Self {
        meta.name.clone().unwrap_or_default()
    }
}

impl Key for ObjectKey {
    fn of(meta: &ObjectMeta) -> Self {
        ObjectKey::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }
}

/// One kind translation reads.
pub trait Kind: Send + Sync + 'static {
    /// The Kubernetes kind, as in `kind:` and in logs.
    const NAME: &'static str;
    /// What a change of one of its objects can affect.
    const REACH: Reach = Reach::Translation;
    /// Whether the API server namespaces it (the YAML reader defaults a missing namespace).
    const NAMESPACED: bool = true;
    /// The generated API type an object deserializes into.
    type Api: DeserializeOwned;
    /// The key of its [`Snapshot`] map.
    type Key: Key;
    /// Pylon's model of one object.
    type Model: PartialEq + Send + Sync + std::fmt::Debug + 'static;
    /// The resource watched, at the version Pylon reads.
    fn resource() -> ApiResource;
    /// The object's metadata.
    fn meta(o: &Self::Api) -> &ObjectMeta;
    /// Converts one object into the model (CRD defaults applied).
    fn convert(o: &Self::Api) -> Result<Self::Model, ConvertError>;
    /// Where the model entries of this kind live in a snapshot.
    fn map(s: &mut Snapshot) -> &mut BTreeMap<Self::Key, Arc<Self::Model>>;
}

/// A Gateway API resource at the version Pylon reads.
/// That is the version of its generated type (the pinned CRD's storage version), so moving the
/// pins moves what is watched.
pub fn gateway_api(kind: &str) -> ApiResource {
    fn of<T: kube::Resource<DynamicType = ()>>() -> ApiResource {
        ApiResource::erase::<T>(&())
    }
    match kind {
        "GatewayClass" => of::<gw::gatewayclasses::GatewayClass>(),
        "Gateway" => of::<gw::gateways::Gateway>(),
        "ListenerSet" => of::<gw::listenersets::ListenerSet>(),
        "HTTPRoute" => of::<gw::httproutes::HttpRoute>(),
        "GRPCRoute" => of::<gw::grpcroutes::GrpcRoute>(),
        "TLSRoute" => of::<gw::tlsroutes::TlsRoute>(),
        "TCPRoute" => of::<gw::tcproutes::TcpRoute>(),
        "UDPRoute" => of::<gw::udproutes::UdpRoute>(),
        "ReferenceGrant" => of::<gw::referencegrants::ReferenceGrant>(),
        "BackendTLSPolicy" => of::<gw::backendtlspolicies::BackendTlsPolicy>(),
        // Not a kind Pylon reads: the API's GA version.
        _ => ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_GROUP, "v1", kind)),
    }
}

/// Implements [`Kind`] for a marker type. `$convert` maps `&Api` to `Result<Model, _>`.
macro_rules! kind {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $api:ty, $key:ty, $model:ty, $field:ident,
     resource: $resource:expr, convert: $convert:expr $(, $($extra:tt)+)?) => {
        $(#[$doc])*
        pub struct $ty;
        impl Kind for $ty {
            const NAME: &'static str = $name;
            type Api = $api;
            type Key = $key;
            type Model = $model;
            fn resource() -> ApiResource {
                $resource
            }
            fn meta(o: &$api) -> &ObjectMeta {
                &o.metadata
            }
            fn convert(o: &$api) -> Result<$model, ConvertError> {
                ($convert)(o)
            }
            fn map(s: &mut Snapshot) -> &mut BTreeMap<$key, Arc<$model>> {
                &mut s.$field
            }
            $($($extra)+)?
        }
    };
}

kind!(
    /// GatewayClass.
    GatewayClasses, "GatewayClass", gw::gatewayclasses::GatewayClass, String,
    gateway::GatewayClass, gateway_classes,
    resource: gateway_api("GatewayClass"),
    convert: |o| Ok(convert::gateway_class(o)),
    const NAMESPACED: bool = false;
);
kind!(
    /// Gateway.
    Gateways, "Gateway", gw::gateways::Gateway, ObjectKey, gateway::Gateway, gateways,
    resource: gateway_api("Gateway"),
    convert: convert::gateway
);
kind!(
    /// ListenerSet.
    ListenerSets, "ListenerSet", gw::listenersets::ListenerSet, ObjectKey, gateway::ListenerSet,
    listener_sets,
    resource: gateway_api("ListenerSet"),
    convert: convert::listener_set
);
kind!(
    /// HTTPRoute.
    HttpRoutes, "HTTPRoute", gw::httproutes::HttpRoute, ObjectKey, route::HttpRoute, http_routes,
    resource: gateway_api("HTTPRoute"),
    convert: convert::http_route
);
kind!(
    /// GRPCRoute.
    GrpcRoutes, "GRPCRoute", gw::grpcroutes::GrpcRoute, ObjectKey, route::GrpcRoute, grpc_routes,
    resource: gateway_api("GRPCRoute"),
    convert: convert::grpc_route
);
kind!(
    /// TLSRoute.
    TlsRoutes, "TLSRoute", gw::tlsroutes::TlsRoute, ObjectKey, route::TlsRoute, tls_routes,
    resource: gateway_api("TLSRoute"),
    convert: convert::tls_route
);
kind!(
    /// TCPRoute.
    TcpRoutes, "TCPRoute", gw::tcproutes::TcpRoute, ObjectKey, route::TcpRoute, tcp_routes,
    resource: gateway_api("TCPRoute"),
    convert: convert::tcp_route
);
kind!(
    /// UDPRoute.
    UdpRoutes, "UDPRoute", gw::udproutes::UdpRoute, ObjectKey, route::UdpRoute, udp_routes,
    resource: gateway_api("UDPRoute"),
    convert: convert::udp_route
);
kind!(
    /// ReferenceGrant.
    ReferenceGrants, "ReferenceGrant", gw::referencegrants::ReferenceGrant, ObjectKey,
    gateway::ReferenceGrant, reference_grants,
    resource: gateway_api("ReferenceGrant"),
    convert: |o| Ok(convert::reference_grant(o))
);
kind!(
    /// BackendTLSPolicy.
    BackendTlsPolicies, "BackendTLSPolicy", gw::backendtlspolicies::BackendTlsPolicy,
    ObjectKey, policy::BackendTlsPolicy, backend_tls_policies,
    resource: gateway_api("BackendTLSPolicy"),
    convert: convert::backend_tls_policy
);
kind!(
    /// Pylon's GatewayParameters.
    Parameters, "GatewayParameters", GatewayParameters, ObjectKey, GatewayParametersSpec,
    parameters,
    resource: ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PYLON_GROUP, "v1alpha1", "GatewayParameters"),
        PARAMETERS_PLURAL,
    ),
    convert: |o: &GatewayParameters| Ok(o.spec.clone())
);
kind!(
    /// Service.
    Services, "Service", core::Service, ObjectKey, m::Service, services,
    resource: ApiResource::erase::<core::Service>(&()),
    convert: |o| Ok(convert::service(o))
);
kind!(
    /// EndpointSlice: only endpoints change with it.
    EndpointSlices, "EndpointSlice", discovery::EndpointSlice, ObjectKey, m::EndpointSlice,
    endpoint_slices,
    resource: ApiResource::erase::<discovery::EndpointSlice>(&()),
    convert: convert::endpoint_slice,
    const REACH: Reach = Reach::Endpoints;
);
kind!(
    /// Secret.
    Secrets, "Secret", core::Secret, ObjectKey, m::Secret, secrets,
    resource: ApiResource::erase::<core::Secret>(&()),
    convert: |o| Ok(convert::secret(o))
);
kind!(
    /// ConfigMap (CA bundles).
    ConfigMaps, "ConfigMap", core::ConfigMap, ObjectKey, m::ConfigMap, config_maps,
    resource: ApiResource::erase::<core::ConfigMap>(&()),
    convert: |o| Ok(convert::config_map(o))
);
kind!(
    /// Namespace (its labels select routes and ListenerSets).
    Namespaces, "Namespace", core::Namespace, String, m::Namespace, namespaces,
    resource: ApiResource::erase::<core::Namespace>(&()),
    convert: |o| Ok(convert::namespace(o)),
    const NAMESPACED: bool = false;
);

/// Number of kinds.
pub const COUNT: usize = 16;

/// What applying one object to a snapshot did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The model changed (added, changed or removed).
    Changed,
    /// The model is the same (e.g. only its status or resourceVersion moved).
    Unchanged,
}

/// Puts an object's model into `s`; an object that does not convert leaves `s` as it was (the
/// caller decides: the watcher takes it out, the YAML reader fails).
pub fn upsert<K: Kind>(s: &mut Snapshot, o: &K::Api) -> Result<Applied, ConvertError> {
    let key = K::Key::of(K::meta(o));
    let model = K::convert(o)?;
    let map = K::map(s);
    if map.get(&key).is_some_and(|old| **old == model) {
        return Ok(Applied::Unchanged);
    }
    map.insert(key, Arc::new(model));
    Ok(Applied::Changed)
}

/// Takes an object out of `s`.
pub fn remove<K: Kind>(s: &mut Snapshot, key: &K::Key) -> Applied {
    match K::map(s).remove(key) {
        Some(_) => Applied::Changed,
        None => Applied::Unchanged,
    }
}
