//! Incremental translation: a change re-attaches only the routes it can affect.
//!
//! [`Incremental`] keeps, per route, the [`Attachment`] it computed last time and what it was
//! computed from: the route itself (the very `Arc` the watcher converted once per
//! resourceVersion) and the Services its rules name. The next translation compares its
//! snapshot with the previous one by pointer, which costs microseconds at thousands of
//! objects, and keeps an attachment when
//! - the route is the same object,
//! - none of the Services it names changed, nor any BackendTLSPolicy in their namespaces,
//! - and nothing the Gateways' listeners are made of changed: GatewayClasses, Gateways,
//!   ListenerSets, ReferenceGrants, Secrets, ConfigMaps, Namespaces, GatewayParameters and the
//!   options. Those change rarely and reach every route (a listener's hostname, allowedRoutes,
//!   a grant), so a change to any of them re-attaches every route, as a full translation does.
//!
//! A backend's endpoints are kept likewise unless its Service or one of that Service's
//! EndpointSlices changed. Everything else a translation does (listeners, Gateway and policy
//! statuses, each Gateway's config assembled from those parts) is done every time, through the
//! same code as [`translate`]: the two are one function ([`translate_with`]) with other
//! [`Parts`], and a property
//! test drives random changes through both and requires equal results at every step
//! (`tests/incremental.rs`).
//!
//! [`translate`]: super::translate

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pylon_config as dp;
use pylon_config::RouteKind;

use crate::model::ObjectKey;
use crate::model::route::Route;
use crate::snapshot::Snapshot;

use super::config::{ClusterConfig, Endpoints, SliceIndex};
use super::output::Translation;
use super::route::{self, Attachment, OwnedGateway, TranslateRule};
use super::{Parts, translate_with};

/// What a translation reused and recomputed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Routes whose attachment was kept.
    pub reused: usize,
    /// Routes attached afresh.
    pub attached: usize,
    /// Backends whose endpoints were resolved afresh (the others' were kept).
    pub resolved: usize,
}

/// One route's attachment and what it was computed from.
struct Memo {
    /// The route object (kept so its address cannot be reused by another while compared).
    route: Arc<dyn Any + Send + Sync>,
    /// The Services its rules name.
    targets: Vec<ObjectKey>,
    attachment: Arc<Attachment>,
    /// The translation that last used it.
    round: u64,
}

/// A translator that remembers its last translation.
#[derive(Default)]
pub struct Incremental {
    prev: Option<Arc<Snapshot>>,
    memos: BTreeMap<RouteKind, BTreeMap<ObjectKey, Memo>>,
    /// Every backend's endpoints in the last translation, by backend name.
    endpoints: Endpoints,
    round: u64,
    last: Stats,
}

impl Incremental {
    /// Translates `s`, equal to [`super::translate`]`(s)`, reusing what `s` shares with the
    /// snapshot translated before.
    pub fn translate(&mut self, s: &Arc<Snapshot>) -> Translation {
        let changes = match &self.prev {
            Some(prev) => Changes::between(prev, s),
            None => Changes::Everything,
        };
        if matches!(changes, Changes::Everything) {
            self.memos.clear();
        }
        self.round += 1;
        let mut parts = Memoised {
            memos: &mut self.memos,
            changes: &changes,
            round: self.round,
            stats: Stats::default(),
            endpoints: &self.endpoints,
            next_endpoints: Endpoints::new(),
        };
        let t = translate_with(s, &mut parts);
        self.last = parts.stats;
        self.endpoints = parts.next_endpoints;
        // Routes that are gone.
        let round = self.round;
        for memos in self.memos.values_mut() {
            memos.retain(|_, m| m.round == round);
        }
        self.prev = Some(s.clone());
        t
    }

    /// What the last translation reused.
    pub fn stats(&self) -> Stats {
        self.last
    }
}

/// What changed between two snapshots, as far as route attachments care.
enum Changes {
    /// Something every route may read: attach them all.
    Everything,
    /// Only these.
    Some {
        /// Services added, changed or removed.
        services: BTreeSet<ObjectKey>,
        /// Namespaces in which a BackendTLSPolicy was added, changed or removed.
        policy_namespaces: BTreeSet<String>,
        /// Services that changed or whose EndpointSlices did.
        endpoint_services: BTreeSet<ObjectKey>,
    },
}

impl Changes {
    fn between(a: &Snapshot, b: &Snapshot) -> Changes {
        let listeners_same = a.options == b.options
            && same(&a.gateway_classes, &b.gateway_classes)
            && same(&a.gateways, &b.gateways)
            && same(&a.listener_sets, &b.listener_sets)
            && same(&a.reference_grants, &b.reference_grants)
            && same(&a.secrets, &b.secrets)
            && same(&a.config_maps, &b.config_maps)
            && same(&a.namespaces, &b.namespaces)
            && same(&a.parameters, &b.parameters);
        if !listeners_same {
            return Changes::Everything;
        }
        let services = changed(&a.services, &b.services);
        let mut endpoint_services = services.clone();
        for key in changed(&a.endpoint_slices, &b.endpoint_slices) {
            for e in [a.endpoint_slices.get(&key), b.endpoint_slices.get(&key)]
                .into_iter()
                .flatten()
            {
                endpoint_services.insert(ObjectKey::new(
                    e.meta.namespace.clone(),
                    e.service_name.clone(),
                ));
            }
        }
        Changes::Some {
            services,
            policy_namespaces: changed(&a.backend_tls_policies, &b.backend_tls_policies)
                .into_iter()
                .map(|k| k.namespace)
                .collect(),
            endpoint_services,
        }
    }

    /// Whether an attachment computed from Services `targets` may have changed.
    fn reach(&self, targets: &[ObjectKey]) -> bool {
        match self {
            Changes::Everything => true,
            Changes::Some {
                services,
                policy_namespaces,
                ..
            } => targets
                .iter()
                .any(|t| services.contains(t) || policy_namespaces.contains(&t.namespace)),
        }
    }
}

impl Changes {
    /// Whether the endpoints of backend `c` may have changed.
    fn reach_endpoints(&self, c: &ClusterConfig) -> bool {
        match self {
            Changes::Everything => true,
            Changes::Some {
                endpoint_services, ..
            } => {
                !endpoint_services.is_empty()
                    && endpoint_services
                        .contains(&ObjectKey::new(c.namespace.clone(), c.service.clone()))
            }
        }
    }
}

/// Whether two maps hold the very same objects.
fn same<K: Eq, V>(a: &BTreeMap<K, Arc<V>>, b: &BTreeMap<K, Arc<V>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| Arc::ptr_eq(va, vb) && ka == kb)
}

/// Keys added, removed or holding another object: one merge walk of the two sorted maps.
fn changed<K: Ord + Clone, V>(a: &BTreeMap<K, Arc<V>>, b: &BTreeMap<K, Arc<V>>) -> BTreeSet<K> {
    let mut out = BTreeSet::new();
    let (mut ia, mut ib) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (ia.peek(), ib.peek()) {
            (None, None) => return out,
            (Some((k, _)), None) => {
                out.insert((*k).clone());
                ia.next();
            }
            (None, Some((k, _))) => {
                out.insert((*k).clone());
                ib.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.insert((*ka).clone());
                    ia.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert((*kb).clone());
                    ib.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(va, vb) {
                        out.insert((*ka).clone());
                    }
                    ia.next();
                    ib.next();
                }
            },
        }
    }
}

/// The [`Parts`] of one incremental translation.
struct Memoised<'a> {
    memos: &'a mut BTreeMap<RouteKind, BTreeMap<ObjectKey, Memo>>,
    changes: &'a Changes,
    round: u64,
    stats: Stats,
    /// The last translation's endpoints, and this one's.
    endpoints: &'a Endpoints,
    next_endpoints: Endpoints,
}

impl Parts for Memoised<'_> {
    fn attach<R: TranslateRule + Send + Sync + 'static>(
        &mut self,
        s: &Snapshot,
        key: &ObjectKey,
        r: &Arc<Route<R>>,
        gateways: &BTreeMap<ObjectKey, OwnedGateway<'_>>,
    ) -> Arc<Attachment> {
        let memos = self.memos.entry(R::DP_KIND).or_default();
        if let Some(m) = memos.get_mut(key)
            && std::ptr::addr_eq(Arc::as_ptr(&m.route), Arc::as_ptr(r))
            && !self.changes.reach(&m.targets)
        {
            m.round = self.round;
            self.stats.reused += 1;
            return m.attachment.clone();
        }
        self.stats.attached += 1;
        let attachment = Arc::new(route::attach(s, r, gateways));
        let memo = Memo {
            route: r.clone(),
            targets: route::backend_targets(r),
            attachment: attachment.clone(),
            round: self.round,
        };
        memos.insert(key.clone(), memo);
        attachment
    }

    fn endpoints(&mut self, s: &Snapshot, clusters: &BTreeMap<String, ClusterConfig>) -> Endpoints {
        let mut index: Option<SliceIndex<'_>> = None;
        let mut out = Endpoints::new();
        for (name, c) in clusters {
            let eps: Vec<dp::Endpoint> = match self.endpoints.get(name) {
                Some(eps) if !self.changes.reach_endpoints(c) => eps.clone(),
                _ => {
                    self.stats.resolved += 1;
                    index.get_or_insert_with(|| SliceIndex::new(s)).endpoints(c)
                }
            };
            self.next_endpoints.insert(name.clone(), eps.clone());
            out.insert(name.clone(), eps);
        }
        out
    }
}
