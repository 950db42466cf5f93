//! Watches: one watcher per kind ([`crate::kinds`]), each event converted into the model right
//! away and kept in [`Objects`], and a change signal only when a model changed.
//!
//! Objects are read untyped and deserialized one by one, so a malformed object is logged and
//! skipped (as if it did not exist) instead of failing the whole list; a missing CRD only
//! makes its watcher retry with backoff. Converting on the event, once per resourceVersion,
//! means a translation copies models instead of re-converting every object; and an update that
//! leaves the model as it was (a status write, ours or anyone's) does not translate at all.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use crate::kinds::{self, Applied, Key as _, Kind, Reach};
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

impl Changes {
    fn mark(&self, reach: Reach) {
        let flag = match reach {
            Reach::Translation => &self.full,
            Reach::Endpoints => &self.endpoints,
        };
        flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The model of every watched object, kept current by the watch events.
#[derive(Default)]
pub struct Objects(Mutex<Snapshot>);

impl Objects {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to the model.
    pub fn update<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        f(&mut self.lock())
    }

    /// The current model with `options`: copies of shared models, nothing converted.
    pub fn snapshot(&self, options: &Options) -> Snapshot {
        let mut s = self.lock().clone();
        s.options = options.clone();
        s
    }

    /// Only Services and EndpointSlices: enough to re-resolve endpoints.
    pub fn endpoints_snapshot(&self, options: &Options) -> Snapshot {
        let s = self.lock();
        Snapshot {
            options: options.clone(),
            services: s.services.clone(),
            endpoint_slices: s.endpoint_slices.clone(),
            ..Default::default()
        }
    }
}

/// The watched model and the raw objects of the kinds whose status the controller writes.
#[derive(Clone)]
pub struct Stores {
    objects: Arc<Objects>,
    gateway_classes: Store<DynamicObject>,
    gateways: Store<DynamicObject>,
    listener_sets: Store<DynamicObject>,
    http_routes: Store<DynamicObject>,
    grpc_routes: Store<DynamicObject>,
    tls_routes: Store<DynamicObject>,
    tcp_routes: Store<DynamicObject>,
    udp_routes: Store<DynamicObject>,
    backend_tls_policies: Store<DynamicObject>,
}

/// Number of watched kinds.
pub const KINDS: usize = kinds::COUNT;

/// The key of a Gateway API object in its reflector store.
fn store_key(kind: &str, key: &crate::model::ObjectKey) -> reflector::ObjectRef<DynamicObject> {
    let r = reflector::ObjectRef::new_with(&key.name, kinds::gateway_api(kind));
    if key.namespace.is_empty() {
        r
    } else {
        r.within(&key.namespace)
    }
}

type Events = BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>;

/// The watch stream of a kind. `managedFields` are dropped on arrival: nothing reads them, and
/// with server-side apply they are often the largest part of an object.
fn events<K: Kind>(client: &kube::Client) -> Events {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &K::resource());
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o| o.metadata.managed_fields = None)
        .boxed()
}

/// What the status writer needs of an object: its identity, resourceVersion and status. The
/// spec is in the model already; keeping the whole object a second time, as a JSON tree, was
/// the larger part of the controller's memory at thousands of routes.
fn status_part(o: &DynamicObject) -> DynamicObject {
    let m = &o.metadata;
    let metadata = kube::api::ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        generation: m.generation,
        ..Default::default()
    };
    let data = match o.data.get("status") {
        Some(status) => serde_json::json!({ "status": status }),
        None => serde_json::json!({}),
    };
    DynamicObject {
        types: o.types.clone(),
        metadata,
        data,
    }
}

/// Keeps the status part of `ev`'s objects in `store`.
fn keep_status(
    store: &mut reflector::store::Writer<DynamicObject>,
    ev: &watcher::Event<DynamicObject>,
) {
    let slim = match ev {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(status_part(o)),
        watcher::Event::Apply(o) => watcher::Event::Apply(status_part(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(status_part(o)),
    };
    store.apply_watcher_event(&slim);
}

/// Reads an untyped object as its kind's API type.
fn typed<K: Kind>(o: &DynamicObject) -> Result<K::Api, serde_json::Error> {
    serde_json::to_value(o).and_then(serde_json::from_value)
}

/// Applies one object to the model; a malformed one (not its kind's API type, or not
/// convertible) is logged, counted and taken out, as if it did not exist.
fn apply<K: Kind>(objects: &Objects, o: &DynamicObject) -> Applied {
    let key = K::Key::of(&o.metadata);
    // Deserialized outside the lock: translations copy the model under it.
    let api = typed::<K>(o).map_err(|e| e.to_string());
    let (applied, error) = objects.update(|s| {
        match api.and_then(|api| kinds::upsert::<K>(s, &api).map_err(|e| e.to_string())) {
            Ok(applied) => (applied, None),
            Err(e) => (kinds::remove::<K>(s, &key), Some(e)),
        }
    });
    if let Some(error) = error {
        crate::metrics::SKIPPED_OBJECTS.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(kind = K::NAME, ?key, %error, "skipping malformed object");
    }
    applied
}

/// Drives one kind's watch: events update the model, a changed model marks a change, errors are
/// logged (the watcher retries). A relist is applied whole at its end, so no translation sees
/// half of it.
fn drive<K: Kind>(
    mut stream: Events,
    mut store: Option<reflector::store::Writer<DynamicObject>>,
    objects: Arc<Objects>,
    changes: Arc<Changes>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut synced = false;
        // Whether the API server said the resource does not exist (logged once, not on every
        // retry of the watcher's backoff).
        let mut missing = false;
        let mut relist: Vec<DynamicObject> = vec![];
        while let Some(ev) = stream.next().await {
            if let Ok(ev) = &ev {
                missing = false;
                if let Some(store) = &mut store {
                    keep_status(store, ev);
                }
            }
            let applied = match ev {
                Ok(watcher::Event::Init) => {
                    relist.clear();
                    Applied::Unchanged
                }
                Ok(watcher::Event::InitApply(o)) => {
                    relist.push(o);
                    Applied::Unchanged
                }
                Ok(watcher::Event::InitDone) => {
                    let listed: BTreeSet<K::Key> =
                        relist.iter().map(|o| K::Key::of(&o.metadata)).collect();
                    let mut applied = objects.update(|s| {
                        let map = K::map(s);
                        let before = map.len();
                        map.retain(|k, _| listed.contains(k));
                        if map.len() == before {
                            Applied::Unchanged
                        } else {
                            Applied::Changed
                        }
                    });
                    for o in std::mem::take(&mut relist) {
                        if apply::<K>(&objects, &o) == Applied::Changed {
                            applied = Applied::Changed;
                        }
                    }
                    if !synced {
                        synced = true;
                        changes.synced.fetch_add(1, Ordering::SeqCst);
                        // The translate loop waits for every kind's first list.
                        changes.notify.notify_one();
                    }
                    applied
                }
                Ok(watcher::Event::Apply(o)) => apply::<K>(&objects, &o),
                Ok(watcher::Event::Delete(o)) => {
                    let key = K::Key::of(&o.metadata);
                    objects.update(|s| kinds::remove::<K>(s, &key))
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
                            kind = K::NAME,
                            "resource not served (CRD not installed?); treating as empty"
                        );
                    } else {
                        tracing::debug!(kind = K::NAME, error = %e, "resource still not served");
                    }
                    Applied::Unchanged
                }
                Err(e) => {
                    tracing::warn!(kind = K::NAME, error = %e, "watch failed; retrying");
                    Applied::Unchanged
                }
            };
            if applied == Applied::Changed {
                crate::metrics::MODEL_CHANGES.fetch_add(1, Ordering::Relaxed);
                changes.mark(K::REACH);
            }
        }
    })
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

/// Starts the watch of a kind whose objects only feed the model.
fn model_only<K: Kind>(client: &kube::Client, objects: &Arc<Objects>, changes: &Arc<Changes>) {
    drive::<K>(events::<K>(client), None, objects.clone(), changes.clone());
}

/// Starts the watch of a kind whose status the controller writes: its raw objects are kept in a
/// store too (current status and resourceVersion without a GET).
fn with_store<K: Kind>(
    client: &kube::Client,
    objects: &Arc<Objects>,
    changes: &Arc<Changes>,
) -> Store<DynamicObject> {
    let writer = reflector::store::Writer::new(K::resource());
    let reader = writer.as_reader();
    drive::<K>(
        events::<K>(client),
        Some(writer),
        objects.clone(),
        changes.clone(),
    );
    reader
}

impl Stores {
    /// Starts every watch.
    pub fn start(client: &kube::Client, changes: &Arc<Changes>) -> Self {
        let objects = Arc::new(Objects::default());
        let (c, o) = (client, &objects);
        model_only::<kinds::ReferenceGrants>(c, o, changes);
        model_only::<kinds::Parameters>(c, o, changes);
        model_only::<kinds::Services>(c, o, changes);
        model_only::<kinds::EndpointSlices>(c, o, changes);
        model_only::<kinds::Secrets>(c, o, changes);
        model_only::<kinds::ConfigMaps>(c, o, changes);
        model_only::<kinds::Namespaces>(c, o, changes);
        Stores {
            gateway_classes: with_store::<kinds::GatewayClasses>(c, o, changes),
            gateways: with_store::<kinds::Gateways>(c, o, changes),
            listener_sets: with_store::<kinds::ListenerSets>(c, o, changes),
            http_routes: with_store::<kinds::HttpRoutes>(c, o, changes),
            grpc_routes: with_store::<kinds::GrpcRoutes>(c, o, changes),
            tls_routes: with_store::<kinds::TlsRoutes>(c, o, changes),
            tcp_routes: with_store::<kinds::TcpRoutes>(c, o, changes),
            udp_routes: with_store::<kinds::UdpRoutes>(c, o, changes),
            backend_tls_policies: with_store::<kinds::BackendTlsPolicies>(c, o, changes),
            objects,
        }
    }

    /// A full snapshot of the model.
    pub fn snapshot(&self, options: &Options) -> Snapshot {
        self.objects.snapshot(options)
    }

    /// A snapshot with only Services and EndpointSlices: enough to re-resolve endpoints.
    pub fn endpoints_snapshot(&self, options: &Options) -> Snapshot {
        self.objects.endpoints_snapshot(options)
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
            "TLSRoute" => &self.tls_routes,
            "TCPRoute" => &self.tcp_routes,
            "UDPRoute" => &self.udp_routes,
            "BackendTLSPolicy" => &self.backend_tls_policies,
            _ => return None,
        };
        // A keyed lookup: the status writer asks for every object of every translation, so a
        // scan of the store would make each write pass quadratic in the number of routes.
        store.get(&store_key(kind, key))
    }
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

    fn route(name: &str, hostname: &str, status: serde_json::Value) -> DynamicObject {
        let mut o = DynamicObject::new(name, &kinds::gateway_api("HTTPRoute")).within("apps");
        o.data = serde_json::json!({
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [hostname]},
        });
        if status != serde_json::json!({}) {
            o.data["status"] = status;
        }
        o
    }

    /// Feeds `events` to a kind's driver and returns the model and what was signalled.
    async fn run(events: Vec<watcher::Event<DynamicObject>>) -> (Snapshot, Changes) {
        let objects = Arc::new(Objects::default());
        let changes = Arc::new(Changes::default());
        let stream = futures::stream::iter(events.into_iter().map(Ok)).boxed();
        drive::<kinds::HttpRoutes>(stream, None, objects.clone(), changes.clone())
            .await
            .unwrap();
        let changes = Arc::into_inner(changes).unwrap();
        (objects.snapshot(&Options::default()), changes)
    }

    fn names(s: &Snapshot) -> Vec<String> {
        s.http_routes.keys().map(|k| k.name.clone()).collect()
    }

    #[tokio::test]
    async fn the_first_list_is_applied_whole_and_signals_once_synced() {
        let (s, changes) = run(vec![
            watcher::Event::Init,
            watcher::Event::InitApply(route("a", "a.example.com", serde_json::json!({}))),
            watcher::Event::InitApply(route("b", "b.example.com", serde_json::json!({}))),
            watcher::Event::InitDone,
        ])
        .await;
        assert_eq!(names(&s), ["a", "b"]);
        assert_eq!(changes.synced.load(Ordering::SeqCst), 1);
        assert!(changes.full.load(Ordering::SeqCst));
        assert!(!changes.endpoints.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_status_write_changes_nothing_a_spec_change_does() {
        let listed = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(route("a", "a.example.com", serde_json::json!({}))),
            watcher::Event::InitDone,
        ];
        let written = serde_json::json!({"parents": [{
            "parentRef": {"name": "gw"},
            "controllerName": "pylon.dev/x",
            "conditions": [],
        }]});
        let mut events = listed.clone();
        events.push(watcher::Event::Apply(route("a", "a.example.com", written)));
        let before = crate::metrics::MODEL_CHANGES.load(Ordering::Relaxed);
        let (_, changes) = run(events).await;
        // Only the list changed the model (other tests may count concurrently, hence ≥).
        assert!(crate::metrics::MODEL_CHANGES.load(Ordering::Relaxed) > before);
        assert!(changes.full.load(Ordering::SeqCst), "the list itself");

        // The status update alone, after the list was translated: no change to translate.
        let objects = Arc::new(Objects::default());
        let changes = Arc::new(Changes::default());
        let listed = futures::stream::iter(listed.into_iter().map(Ok)).boxed();
        drive::<kinds::HttpRoutes>(listed, None, objects.clone(), changes.clone())
            .await
            .unwrap();
        changes.full.store(false, Ordering::SeqCst);
        let status_only = futures::stream::iter([Ok(watcher::Event::Apply(route(
            "a",
            "a.example.com",
            serde_json::json!({"parents": []}),
        )))])
        .boxed();
        drive::<kinds::HttpRoutes>(status_only, None, objects.clone(), changes.clone())
            .await
            .unwrap();
        assert!(!changes.full.load(Ordering::SeqCst), "status-only update");
        let spec = futures::stream::iter([Ok(watcher::Event::Apply(route(
            "a",
            "new.example.com",
            serde_json::json!({}),
        )))])
        .boxed();
        drive::<kinds::HttpRoutes>(spec, None, objects.clone(), changes.clone())
            .await
            .unwrap();
        assert!(changes.full.load(Ordering::SeqCst), "spec update");
        let s = objects.snapshot(&Options::default());
        let a = &s.http_routes[&crate::model::ObjectKey::new("apps", "a")];
        assert_eq!(a.spec.hostnames, ["new.example.com"]);
    }

    #[tokio::test]
    async fn deletes_and_relists_take_objects_out_and_malformed_ones_are_skipped() {
        let mut malformed = route("c", "c.example.com", serde_json::json!({}));
        malformed.data["spec"]["hostnames"] = serde_json::json!("not a list");
        let (s, _) = run(vec![
            watcher::Event::Init,
            watcher::Event::InitApply(route("a", "a.example.com", serde_json::json!({}))),
            watcher::Event::InitApply(route("b", "b.example.com", serde_json::json!({}))),
            watcher::Event::InitApply(route("c", "c.example.com", serde_json::json!({}))),
            watcher::Event::InitDone,
            watcher::Event::Delete(route("a", "a.example.com", serde_json::json!({}))),
            // c turns malformed: skipped, as if it did not exist.
            watcher::Event::Apply(malformed),
            // The watch expired: a relist that no longer has b.
            watcher::Event::Init,
            watcher::Event::InitApply(route("d", "d.example.com", serde_json::json!({}))),
            watcher::Event::InitDone,
        ])
        .await;
        assert_eq!(names(&s), ["d"]);
    }

    #[tokio::test]
    async fn the_store_keeps_status_and_identity_not_spec_or_managed_fields() {
        let mut o = route("a", "a.example.com", serde_json::json!({"parents": []}));
        o.metadata.uid = Some("u1".into());
        o.metadata.resource_version = Some("7".into());
        o.metadata.managed_fields = Some(vec![Default::default()]);
        o.metadata.annotations = Some([("big".to_string(), "x".repeat(64))].into());
        let writer = reflector::store::Writer::new(kinds::gateway_api("HTTPRoute"));
        let reader = writer.as_reader();
        let objects = Arc::new(Objects::default());
        let changes = Arc::new(Changes::default());
        let events = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(o),
            watcher::Event::InitDone,
        ];
        let stream = futures::stream::iter(events.into_iter().map(Ok)).boxed();
        drive::<kinds::HttpRoutes>(stream, Some(writer), objects.clone(), changes)
            .await
            .unwrap();
        let key = crate::model::ObjectKey::new("apps", "a");
        let kept = reader.get(&store_key("HTTPRoute", &key)).unwrap();
        assert_eq!(kept.data, serde_json::json!({"status": {"parents": []}}));
        assert_eq!(kept.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(kept.metadata.resource_version.as_deref(), Some("7"));
        assert!(kept.metadata.managed_fields.is_none() && kept.metadata.annotations.is_none());
        // The model still has the spec.
        let s = objects.snapshot(&Options::default());
        assert_eq!(s.http_routes[&key].spec.hostnames, ["a.example.com"]);
    }

    #[test]
    fn status_objects_are_found_by_key_in_their_store() {
        for (kind, namespace) in [
            ("Gateway", "apps"),
            ("GatewayClass", ""),
            ("HTTPRoute", "x"),
        ] {
            let mut writer = reflector::store::Writer::new(kinds::gateway_api(kind));
            let reader = writer.as_reader();
            let mut o = DynamicObject::new("obj", &kinds::gateway_api(kind));
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
