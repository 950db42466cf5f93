//! Watches: one kube-runtime reflector per kind feeding a store, and a change signal.
//!
//! Gateway API kinds are watched as untyped objects and converted one by one when a snapshot
//! is built, so a malformed object is logged and skipped instead of failing the whole list; a
//! missing CRD only makes its watcher retry with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{Stream, StreamExt};
use gateway_api::experimental as gw;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::model::convert;
use crate::model::params::{GatewayParameters, PARAMETERS_PLURAL, PYLON_GROUP};
use crate::snapshot::{Options, Snapshot};

/// What changed since the last translation.
#[derive(Default)]
pub struct Changes {
    /// Something translation reads changed.
    pub full: AtomicBool,
    /// Only EndpointSlices changed.
    pub endpoints: AtomicBool,
    /// Wakes the translate loop (keeps a permit, so no change is lost).
    pub notify: Notify,
    /// Kinds whose initial list has completed.
    pub synced: AtomicUsize,
}

/// The stores of every watched kind.
#[derive(Clone)]
pub struct Stores {
    gateway_classes: Store<DynamicObject>,
    gateways: Store<DynamicObject>,
    listener_sets: Store<DynamicObject>,
    http_routes: Store<DynamicObject>,
    grpc_routes: Store<DynamicObject>,
    reference_grants: Store<DynamicObject>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    namespaces: Store<Namespace>,
    backend_tls_policies: Store<DynamicObject>,
    config_maps: Store<ConfigMap>,
    parameters: Store<DynamicObject>,
}

/// Number of watched kinds.
pub const KINDS: usize = 13;

/// The key of a Gateway API object in its reflector store.
fn store_key(kind: &str, key: &crate::model::ObjectKey) -> reflector::ObjectRef<DynamicObject> {
    let r = reflector::ObjectRef::new_with(&key.name, gateway_api(kind));
    if key.namespace.is_empty() {
        r
    } else {
        r.within(&key.namespace)
    }
}

/// The Gateway API resource watched for `kind`, at the version Pylon reads. The reflector
/// stores key their objects by it, so lookups must use the very same value.
fn gateway_api(kind: &str) -> ApiResource {
    let version = match kind {
        "ReferenceGrant" => "v1beta1",
        _ => "v1",
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        crate::model::GATEWAY_GROUP,
        version,
        kind,
    ))
}

/// Drives one watcher stream: events mark changes, errors are logged (the watcher retries).
fn drive<K, S>(kind: &'static str, stream: S, changes: Arc<Changes>, endpoints_only: bool)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut synced = false;
        // Whether the API server said the resource does not exist (logged once, not on every
        // retry of the watcher's backoff).
        let mut missing = false;
        while let Some(ev) = stream.next().await {
            if ev.is_ok() {
                missing = false;
            }
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if !synced {
                        synced = true;
                        changes.synced.fetch_add(1, Ordering::SeqCst);
                    }
                    changes.full.store(true, Ordering::SeqCst);
                    changes.notify.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => {
                    let flag = if endpoints_only {
                        &changes.endpoints
                    } else {
                        &changes.full
                    };
                    flag.store(true, Ordering::SeqCst);
                    changes.notify.notify_one();
                }
                Err(e) if not_served(&e) => {
                    // The CRD is not installed: count the kind as listed (empty) so startup does
                    // not wait for it; the watcher keeps retrying in case it appears, quietly.
                    if !synced {
                        synced = true;
                        changes.synced.fetch_add(1, Ordering::SeqCst);
                        changes.notify.notify_one();
                    }
                    if !missing {
                        missing = true;
                        tracing::warn!(
                            kind,
                            "resource not served (CRD not installed?); treating as empty"
                        );
                    } else {
                        tracing::debug!(kind, error = %e, "resource still not served");
                    }
                }
                Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying"),
            }
        }
    });
}

/// Whether a watcher error means the resource is not served at all (404: CRD not installed),
/// whether listing or watching failed.
fn not_served(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

fn dynamic(
    client: &kube::Client,
    kind: &'static str,
    ar: ApiResource,
    changes: &Arc<Changes>,
) -> Store<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let writer = reflector::store::Writer::new(ar);
    let reader = writer.as_reader();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    drive(kind, stream, changes.clone(), false);
    reader
}

fn typed<K>(
    client: &kube::Client,
    kind: &'static str,
    changes: &Arc<Changes>,
    endpoints_only: bool,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    drive(kind, stream, changes.clone(), endpoints_only);
    reader
}

impl Stores {
    /// Starts every watch.
    pub fn start(client: &kube::Client, changes: &Arc<Changes>) -> Self {
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let (namespaces, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(ns_api, watcher::Config::default()).default_backoff(),
        );
        drive("Namespace", stream, changes.clone(), false);
        Stores {
            gateway_classes: dynamic(client, "GatewayClass", gateway_api("GatewayClass"), changes),
            gateways: dynamic(client, "Gateway", gateway_api("Gateway"), changes),
            listener_sets: dynamic(client, "ListenerSet", gateway_api("ListenerSet"), changes),
            http_routes: dynamic(client, "HTTPRoute", gateway_api("HTTPRoute"), changes),
            grpc_routes: dynamic(client, "GRPCRoute", gateway_api("GRPCRoute"), changes),
            reference_grants: dynamic(
                client,
                "ReferenceGrant",
                gateway_api("ReferenceGrant"),
                changes,
            ),
            services: typed(client, "Service", changes, false),
            endpoint_slices: typed(client, "EndpointSlice", changes, true),
            secrets: typed(client, "Secret", changes, false),
            namespaces,
            backend_tls_policies: dynamic(
                client,
                "BackendTLSPolicy",
                gateway_api("BackendTLSPolicy"),
                changes,
            ),
            config_maps: typed(client, "ConfigMap", changes, false),
            parameters: dynamic(
                client,
                "GatewayParameters",
                ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(PYLON_GROUP, "v1alpha1", "GatewayParameters"),
                    PARAMETERS_PLURAL,
                ),
                changes,
            ),
        }
    }

    /// Builds a full snapshot from the stores.
    pub fn snapshot(&self, options: &Options) -> Snapshot {
        let mut s = self.endpoints_snapshot(options);
        for c in each::<gw::gatewayclasses::GatewayClass>("GatewayClass", &self.gateway_classes) {
            let c = convert::gateway_class(&c);
            s.gateway_classes.insert(c.meta.name.clone(), c);
        }
        for g in each::<gw::gateways::Gateway>("Gateway", &self.gateways) {
            if let Some(g) = skip_bad(convert::gateway(&g)) {
                s.gateways.insert(g.meta.key(), g);
            }
        }
        for o in each::<gw::listenersets::ListenerSet>("ListenerSet", &self.listener_sets) {
            if let Some(o) = skip_bad(convert::listener_set(&o)) {
                s.listener_sets.insert(o.meta.key(), o);
            }
        }
        for r in each::<gw::httproutes::HttpRoute>("HTTPRoute", &self.http_routes) {
            if let Some(r) = skip_bad(convert::http_route(&r)) {
                s.http_routes.insert(r.meta.key(), r);
            }
        }
        for r in each::<gw::grpcroutes::GrpcRoute>("GRPCRoute", &self.grpc_routes) {
            if let Some(r) = skip_bad(convert::grpc_route(&r)) {
                s.grpc_routes.insert(r.meta.key(), r);
            }
        }
        for g in
            each::<gw::referencegrants::ReferenceGrant>("ReferenceGrant", &self.reference_grants)
        {
            let g = convert::reference_grant(&g);
            s.reference_grants.insert(g.meta.key(), g);
        }
        for o in self.secrets.state() {
            let o = convert::secret(&o);
            s.secrets.insert(o.meta.key(), o);
        }
        for p in each::<gateway_api::backendtlspolicies::BackendTlsPolicy>(
            "BackendTLSPolicy",
            &self.backend_tls_policies,
        ) {
            if let Some(p) = skip_bad(convert::backend_tls_policy(&p)) {
                s.backend_tls_policies.insert(p.meta.key(), p);
            }
        }
        for p in each::<GatewayParameters>("GatewayParameters", &self.parameters) {
            let key = crate::model::ObjectKey::new(
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            s.parameters.insert(key, p.spec);
        }
        for o in self.config_maps.state() {
            let o = convert::config_map(&o);
            s.config_maps.insert(o.meta.key(), o);
        }
        for o in self.namespaces.state() {
            let o = convert::namespace(&o);
            s.namespaces.insert(o.meta.name.clone(), o);
        }
        s
    }

    /// The cached status and resourceVersion of a Gateway API object, if the store has it.
    pub fn status_of(
        &self,
        kind: &str,
        key: &crate::model::ObjectKey,
    ) -> Option<(serde_json::Value, Option<String>)> {
        let o = self.find_status_object(kind, key)?;
        let status = o
            .data
            .get("status")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Some((status, o.metadata.resource_version.clone()))
    }

    /// The uid of a status-bearing object in the caches: tells a recreated object (same name,
    /// new uid, empty status) from the one whose status was last written.
    pub fn uid_of(&self, kind: &str, key: &crate::model::ObjectKey) -> Option<String> {
        self.find_status_object(kind, key)?.metadata.uid.clone()
    }

    fn find_status_object(
        &self,
        kind: &str,
        key: &crate::model::ObjectKey,
    ) -> Option<Arc<DynamicObject>> {
        let store = match kind {
            "GatewayClass" => &self.gateway_classes,
            "Gateway" => &self.gateways,
            "ListenerSet" => &self.listener_sets,
            "HTTPRoute" => &self.http_routes,
            "GRPCRoute" => &self.grpc_routes,
            "BackendTLSPolicy" => &self.backend_tls_policies,
            _ => return None,
        };
        // A keyed lookup: the status writer asks for every object of every translation, so a
        // scan of the store would make each write pass quadratic in the number of routes.
        store.get(&store_key(kind, key))
    }

    /// A snapshot with only Services and EndpointSlices: enough to re-resolve endpoints.
    pub fn endpoints_snapshot(&self, options: &Options) -> Snapshot {
        let mut s = Snapshot {
            options: options.clone(),
            ..Default::default()
        };
        for o in self.services.state() {
            let o = convert::service(&o);
            s.services.insert(o.meta.key(), o);
        }
        for o in self.endpoint_slices.state() {
            if let Some(o) = skip_bad(convert::endpoint_slice(&o)) {
                s.endpoint_slices.insert(o.meta.key(), o);
            }
        }
        s
    }
}

fn skip_bad<T>(r: Result<T, convert::ConvertError>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(e) => {
            crate::metrics::SKIPPED_OBJECTS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "skipping malformed object");
            None
        }
    }
}

/// Converts the untyped objects of a store to their generated type, skipping malformed ones.
fn each<K: DeserializeOwned>(kind: &'static str, store: &Store<DynamicObject>) -> Vec<K> {
    store
        .state()
        .iter()
        .filter_map(|o| {
            let typed = serde_json::to_value(o.as_ref()).and_then(serde_json::from_value::<K>);
            match typed {
                Ok(k) => Some(k),
                Err(e) => {
                    crate::metrics::SKIPPED_OBJECTS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        kind,
                        namespace = o.metadata.namespace.as_deref().unwrap_or(""),
                        name = o.metadata.name.as_deref().unwrap_or(""),
                        error = %e,
                        "skipping malformed object"
                    );
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_resource_is_recognised_however_the_watcher_reports_it() {
        let status = |code| {
            let mut s = kube::core::Status::failure("x", "NotFound");
            s.code = code;
            Box::new(s)
        };
        assert!(not_served(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(404))
        )));
        assert!(not_served(&watcher::Error::WatchStartFailed(
            kube::Error::Api(status(404))
        )));
        assert!(not_served(&watcher::Error::WatchError(status(404))));
        assert!(!not_served(&watcher::Error::WatchError(status(410))));
        assert!(!not_served(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(403))
        )));
    }

    #[test]
    fn status_objects_are_found_by_key_in_their_store() {
        for (kind, namespace) in [
            ("Gateway", "apps"),
            ("GatewayClass", ""),
            ("HTTPRoute", "x"),
        ] {
            let mut writer = reflector::store::Writer::new(gateway_api(kind));
            let reader = writer.as_reader();
            let mut o = DynamicObject::new("obj", &gateway_api(kind));
            if !namespace.is_empty() {
                o = o.within(namespace);
            }
            writer.apply_watcher_event(&watcher::Event::Apply(o));
            let key = crate::model::ObjectKey::new(namespace, "obj");
            assert!(reader.get(&store_key(kind, &key)).is_some(), "{kind}");
            let other = crate::model::ObjectKey::new(namespace, "other");
            assert!(reader.get(&store_key(kind, &other)).is_none(), "{kind}");
        }
    }
}
