//! Deltas between two configs of one Gateway: what the controller streams after the first
//! snapshot, so that one route's change costs the data plane that route, not the Gateway.
//!
//! [`diff`] and [`apply`] are inverse pure functions: `apply(old, &diff(old, new)) == new` for
//! every pair of configs whose listeners hold their routes in canonical order ([`route_order`]),
//! which the controller sends. The data plane applies a delta to the config it runs and learns,
//! from the [`Touched`] parts, what of its route table to rebuild.
//!
//! Granularity: a listener whose own settings (port, protocol, hostname, TLS) changed is sent
//! whole; otherwise its routes are sent per route (all entries of one `kind/namespace/name`,
//! usually one); backends are sent whole per name (endpoints included).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Backend, BackendRef, Config, Filter, Listener, Route, RouteKind};

/// The changes from one config to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delta {
    /// Every listener's name, in order, when the set or the order of listeners changed; a
    /// listener not named is removed, a new one must be in `listeners`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_order: Option<Vec<String>>,
    /// Listeners that are new or whose own settings changed, whole (routes included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// Routes replaced on listeners not sent whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSet>,
    /// Backends that are new or changed, whole (endpoints included).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, Backend>,
    /// Backends removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_backends: Vec<String>,
}

impl Delta {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Delta::default()
    }
}

/// All entries of one route on one listener (a route attached twice to a listener, through two
/// parentRefs, has two); empty = the route left the listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSet {
    pub listener: String,
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub routes: Vec<Arc<Route>>,
}

/// Identifies a route within a listener.
pub type RouteKey<'a> = (RouteKind, &'a str, &'a str);

fn key(r: &Route) -> RouteKey<'_> {
    (r.kind, &r.namespace, &r.name)
}

/// The canonical order of a listener's routes: by kind, namespace, name (entries of one route
/// keep their relative order when sorted stably). Matching does not depend on it: precedence
/// is decided by [`Route`] contents; it makes a config the one value a delta rebuilds.
pub fn route_order(a: &Route, b: &Route) -> Ordering {
    key(a).cmp(&key(b))
}

/// Where a group of routes sits in a listener's route table: what a route change dirties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostKey {
    /// Routes without hostnames.
    Any,
    /// `*.suffix` routes.
    Wildcard(String),
    Exact(String),
}

impl HostKey {
    /// The groups a route belongs to.
    pub fn of(r: &Route) -> Vec<HostKey> {
        if r.hostnames.is_empty() {
            return vec![HostKey::Any];
        }
        r.hostnames
            .iter()
            .map(|h| {
                if h.starts_with('*') {
                    HostKey::Wildcard(h.clone())
                } else {
                    HostKey::Exact(h.clone())
                }
            })
            .collect()
    }
}

/// Every backend name a route refers to (backendRefs and mirrors, per-backend filters included).
pub fn route_backends(r: &Route) -> impl Iterator<Item = &str> {
    fn mirrors(filters: &[Filter]) -> impl Iterator<Item = &str> {
        filters.iter().filter_map(|f| match f {
            Filter::RequestMirror(m) => Some(m.backend.as_str()),
            _ => None,
        })
    }
    r.rules.iter().flat_map(|rule| {
        mirrors(&rule.filters).chain(rule.backend_refs.iter().flat_map(|b| match b {
            BackendRef::Backend(t) => {
                Box::new(std::iter::once(t.name.as_str()).chain(mirrors(&t.filters)))
                    as Box<dyn Iterator<Item = &str>>
            }
            BackendRef::Invalid(_) => Box::new(std::iter::empty()),
        }))
    })
}

/// Host groups of one listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hosts {
    /// The group of routes without hostnames.
    pub any: bool,
    /// Groups by hostname (exact or `*.` wildcard).
    pub names: BTreeSet<String>,
}

impl Hosts {
    pub fn insert(&mut self, r: &Route) {
        self.any |= r.hostnames.is_empty();
        self.names.extend(r.hostnames.iter().cloned());
    }

    pub fn contains(&self, k: &HostKey) -> bool {
        match k {
            HostKey::Any => self.any,
            HostKey::Wildcard(h) | HostKey::Exact(h) => self.names.contains(h),
        }
    }

    /// Whether `r` is in one of these groups.
    pub fn holds(&self, r: &Route) -> bool {
        if r.hostnames.is_empty() {
            self.any
        } else {
            r.hostnames.iter().any(|h| self.names.contains(h))
        }
    }
}

/// What a delta changed, for the data plane to validate and rebuild only that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    /// Listeners sent whole (new or changed settings): rebuilt whole.
    pub listeners: BTreeSet<String>,
    /// Whether listeners were added, removed or reordered (ports and TLS are rebuilt).
    pub order: bool,
    /// Per listener not sent whole, the host groups whose routes changed.
    pub hosts: BTreeMap<String, Hosts>,
    /// Backends added, changed or removed: every rule that refers to one is rebuilt.
    pub backends: BTreeSet<String>,
}

impl Touched {
    /// Whether route `r` of `listener` is in a part of the route table the delta rebuilds: its
    /// listener was sent whole, its host group changed, or it refers to a changed backend.
    pub fn rebuilds(&self, listener: &str, r: &Route) -> bool {
        self.listeners.contains(listener)
            || self.hosts.get(listener).is_some_and(|h| h.holds(r))
            || (!self.backends.is_empty() && route_backends(r).any(|b| self.backends.contains(b)))
    }
}

/// A delta that does not fit the config it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("listenerOrder names {0:?}, which is neither a current listener nor in listeners")]
    UnknownListener(String),
    #[error("listenerOrder names {0:?} twice")]
    DuplicateListener(String),
    #[error("listeners: {0:?} is sent but not in listenerOrder")]
    Unordered(String),
    #[error("routes: listener {0:?} does not exist")]
    NoListener(String),
    #[error("routes: listener {0:?} is sent whole; its routes cannot also be patched")]
    WholeAndPatched(String),
    #[error(
        "routes: an entry of {kind:?} {namespace}/{name} on listener {listener:?} is another route"
    )]
    Mismatch {
        listener: String,
        kind: RouteKind,
        namespace: String,
        name: String,
    },
    #[error("removedBackends: {0:?} does not exist")]
    NoBackend(String),
}

fn settings_equal(a: &Listener, b: &Listener) -> bool {
    a.name == b.name
        && a.port == b.port
        && a.protocol == b.protocol
        && a.hostname == b.hostname
        && a.tls == b.tls
}

/// A listener's routes in canonical order (borrowed when they already are).
fn canonical(l: &Listener) -> Cow<'_, [Arc<Route>]> {
    if l.routes
        .is_sorted_by(|a, b| route_order(a, b) != Ordering::Greater)
    {
        Cow::Borrowed(&l.routes)
    } else {
        let mut routes = l.routes.clone();
        routes.sort_by(|a, b| route_order(a, b));
        Cow::Owned(routes)
    }
}

/// The delta from `old` to `new`; `None` when only a snapshot can express it (another
/// `apiVersion`).
pub fn diff(old: &Config, new: &Config) -> Option<Delta> {
    if old.api_version != new.api_version {
        return None;
    }
    let mut d = Delta::default();
    let names = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| l.name.clone())
            .collect::<Vec<_>>()
    };
    let new_names = names(new);
    if names(old) != new_names {
        d.listener_order = Some(new_names);
    }
    let old_listeners: BTreeMap<&str, &Listener> =
        old.listeners.iter().map(|l| (l.name.as_str(), l)).collect();
    for l in &new.listeners {
        match old_listeners.get(l.name.as_str()) {
            Some(o) if settings_equal(o, l) => diff_routes(o, l, &mut d.routes),
            _ => d.listeners.push(l.clone()),
        }
    }
    for (name, b) in &new.backends {
        if old.backends.get(name) != Some(b) {
            d.backends.insert(name.clone(), b.clone());
        }
    }
    d.removed_backends = old
        .backends
        .keys()
        .filter(|k| !new.backends.contains_key(*k))
        .cloned()
        .collect();
    Some(d)
}

/// One walk over both route lists in canonical order: every route whose entries differ.
fn diff_routes(old: &Listener, new: &Listener, out: &mut Vec<RouteSet>) {
    let (o, n) = (canonical(old), canonical(new));
    let (mut i, mut j) = (0, 0);
    while i < o.len() || j < n.len() {
        let k = match (o.get(i), n.get(j)) {
            (Some(a), Some(b)) => key(a).min(key(b)),
            (Some(r), None) | (None, Some(r)) => key(r),
            (None, None) => unreachable!("the loop condition"),
        };
        let end =
            |rs: &[Arc<Route>], at: usize| at + rs[at..].iter().take_while(|r| key(r) == k).count();
        let (i2, j2) = (end(&o, i), end(&n, j));
        if o[i..i2] != n[j..j2] {
            out.push(RouteSet {
                listener: new.name.clone(),
                kind: k.0,
                namespace: k.1.to_string(),
                name: k.2.to_string(),
                routes: n[j..j2].to_vec(),
            });
        }
        (i, j) = (i2, j2);
    }
}

/// Applies `delta` to `base`: the new config and what changed. Checks only that the delta fits
/// `base`; the new config still needs validating (`validate::validate_touched`).
pub fn apply(base: &Config, delta: &Delta) -> Result<(Config, Touched), DeltaError> {
    let mut t = Touched::default();
    let mut sent: BTreeMap<&str, &Listener> = BTreeMap::new();
    for l in &delta.listeners {
        sent.insert(l.name.as_str(), l);
        t.listeners.insert(l.name.clone());
    }
    let mut config = Config {
        api_version: base.api_version.clone(),
        listeners: Vec::new(),
        backends: base.backends.clone(),
    };
    let current: BTreeMap<&str, &Listener> = base
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();
    let order: Vec<&str> = match &delta.listener_order {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => base.listeners.iter().map(|l| l.name.as_str()).collect(),
    };
    let mut seen = BTreeSet::new();
    for name in &order {
        if !seen.insert(*name) {
            return Err(DeltaError::DuplicateListener(name.to_string()));
        }
        let l = match (sent.get(name), current.get(name)) {
            (Some(l), _) | (None, Some(l)) => (*l).clone(),
            (None, None) => return Err(DeltaError::UnknownListener(name.to_string())),
        };
        config.listeners.push(l);
    }
    if let Some(name) = sent.keys().find(|n| !seen.contains(*n)) {
        return Err(DeltaError::Unordered(name.to_string()));
    }
    t.order = delta.listener_order.is_some();
    for set in &delta.routes {
        if sent.contains_key(set.listener.as_str()) {
            return Err(DeltaError::WholeAndPatched(set.listener.clone()));
        }
        let listener = config
            .listeners
            .iter_mut()
            .find(|l| l.name == set.listener)
            .ok_or_else(|| DeltaError::NoListener(set.listener.clone()))?;
        let hosts = t.hosts.entry(set.listener.clone()).or_default();
        replace_route(listener, set, hosts)?;
    }
    for name in &delta.removed_backends {
        if config.backends.remove(name).is_none() {
            return Err(DeltaError::NoBackend(name.clone()));
        }
        t.backends.insert(name.clone());
    }
    for (name, b) in &delta.backends {
        config.backends.insert(name.clone(), b.clone());
        t.backends.insert(name.clone());
    }
    Ok((config, t))
}

/// Replaces the entries of one route in `listener`, keeping the canonical order.
fn replace_route(
    listener: &mut Listener,
    set: &RouteSet,
    hosts: &mut Hosts,
) -> Result<(), DeltaError> {
    let k: RouteKey<'_> = (set.kind, &set.namespace, &set.name);
    if set.routes.iter().any(|r| key(r) != k) {
        return Err(DeltaError::Mismatch {
            listener: set.listener.clone(),
            kind: set.kind,
            namespace: set.namespace.clone(),
            name: set.name.clone(),
        });
    }
    // Not `partition_point` alone: a config loaded from a file need not be in canonical order.
    listener.routes.retain(|r| {
        let hit = key(r) == k;
        if hit {
            hosts.insert(r);
        }
        !hit
    });
    let at = listener.routes.partition_point(|r| key(r) < k);
    for r in &set.routes {
        hosts.insert(r);
    }
    listener.routes.splice(at..at, set.routes.iter().cloned());
    Ok(())
}

#[cfg(any(test, feature = "random"))]
pub mod random;
#[cfg(test)]
mod tests;
