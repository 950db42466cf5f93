//! Honest status: a Gateway is Programmed, a listener Programmed and a route Accepted on it only
//! once a ready data plane of that Gateway has applied (acked) a config containing that
//! listener or route *in its current form*.
//!
//! Each published config is summarised as [`Forms`]: a fingerprint per listener and per route
//! (endpoints excluded). A [`Ledger`] numbers the structures published for a Gateway in order
//! and keeps, per listener and route, the number since which it has had its current form
//! ([`Since`]). A listener or route is serving when a ready data-plane Pod runs a structure
//! numbered at or after that, so a change to one route only makes that route Pending, never its
//! neighbours; and a version acked long after it was published (thousands of routes created in
//! a burst publish many) is still known by its number, where a history of whole [`Forms`]
//! would have to be kept (and bounded) to tell. What the Pods run comes from their
//! annotations (see [`crate::dataplane_pods`]), so any replica, in particular a newly elected
//! leader, sees the same. Translation stays pure; this step overlays what the data planes
//! reported.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use pylon_config as dp;
use pylon_config::delta::route_backends;

use crate::model::ObjectKey;
use crate::translate::output::{Condition, RouteParentStatus, Translation};
use crate::translate::reason::{ConditionStatus, ConditionType, Reason};
use crate::version::hash_of as fingerprint;

/// The data-plane form of each listener and route of one config (endpoints excluded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forms {
    /// Listener name → fingerprint.
    pub listeners: BTreeMap<String, u64>,
    /// "Kind/namespace/name" → fingerprint.
    pub routes: BTreeMap<String, u64>,
}

/// The key of a route in [`Forms::routes`].
pub fn route_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Forms {
    /// The forms of every listener and route of `config`. Hashes are streamed
    /// ([`fingerprint`]), nothing is cloned: at thousands of routes this runs on every
    /// published structure.
    pub fn of(config: &dp::Config) -> Forms {
        Forms::of_hashed(config, &crate::version::RouteHashes::default().of(config))
    }

    /// [`Forms::of`], given the config's route hashes ([`crate::version::RouteHashes::of`]).
    pub fn of_hashed(config: &dp::Config, hashed: &crate::version::Hashed) -> Forms {
        let backends: BTreeMap<&str, u64> = config
            .backends
            .iter()
            .map(|(name, b)| (name.as_str(), fingerprint(&(b.protocol, &b.tls))))
            .collect();
        let mut listeners = BTreeMap::new();
        // Per route: its entries on every listener, and the backends (minus endpoints, which
        // change freely) they use.
        let mut route_forms: BTreeMap<String, (Vec<u64>, BTreeMap<&str, u64>)> = BTreeMap::new();
        for (l, hashes) in config.listeners.iter().zip(hashed) {
            let bare = (&l.name, l.port, l.protocol, &l.hostname, &l.tls);
            listeners.insert(l.name.clone(), fingerprint(&bare));
            for (r, hash) in l.routes.iter().zip(hashes) {
                let entry = route_forms
                    .entry(route_key(r.kind.as_str(), &r.namespace, &r.name))
                    .or_default();
                entry.0.push(fingerprint(&(&l.name, hash)));
                for name in route_backends(r) {
                    if let Some((name, form)) = backends.get_key_value(name) {
                        entry.1.insert(name, *form);
                    }
                }
            }
        }
        Forms {
            listeners,
            routes: route_forms
                .into_iter()
                .map(|(k, (mut forms, backends))| {
                    forms.sort_unstable();
                    (k, fingerprint(&(forms, backends)))
                })
                .collect(),
        }
    }
}

/// A part's current form and the number of the structure since which it has had it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mark {
    form: u64,
    since: u64,
}

/// Per listener and route of a Gateway's current config: since which structure (by [`Ledger`]
/// number) it has had its current form. Every structure numbered at or after that contains it
/// as it is now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Since {
    listeners: BTreeMap<String, Mark>,
    routes: BTreeMap<String, Mark>,
}

impl Since {
    fn get(&self, part: Part<'_>) -> Option<u64> {
        match part {
            Part::Gateway => Some(0),
            Part::Listener(n) => self.listeners.get(n).map(|m| m.since),
            Part::Route(k) => self.routes.get(k).map(|m| m.since),
        }
    }
}

/// How many published structures per Gateway a [`Ledger`] remembers the number of (a few
/// dozen bytes each): a data plane acking an older one is treated as running an unknown one.
pub const REMEMBERED: usize = 4096;

/// The structures (config minus endpoints) one replica published for one Gateway, numbered in
/// publication order, and [`Since`] for the latest.
#[derive(Debug, Default)]
pub struct Ledger {
    next: u64,
    numbers: HashMap<String, u64>,
    order: VecDeque<(String, u64)>,
    since: Arc<Since>,
}

impl Ledger {
    /// Records `structure`, whose parts have `forms`, as the latest; returns its number. A
    /// structure published again (a change undone) gets a new number: it is the latest again.
    pub fn record(&mut self, structure: &str, forms: &Forms) -> u64 {
        self.next += 1;
        let n = self.next;
        self.numbers.insert(structure.to_string(), n);
        self.order.push_back((structure.to_string(), n));
        while self.order.len() > REMEMBERED {
            if let Some((old, m)) = self.order.pop_front()
                && self.numbers.get(&old) == Some(&m)
            {
                self.numbers.remove(&old);
            }
        }
        let since = Arc::make_mut(&mut self.since);
        for (marks, current) in [
            (&mut since.listeners, &forms.listeners),
            (&mut since.routes, &forms.routes),
        ] {
            marks.retain(|k, _| current.contains_key(k));
            for (k, &form) in current {
                let mark = marks.entry(k.clone()).or_insert(Mark { form, since: n });
                if mark.form != form {
                    *mark = Mark { form, since: n };
                }
            }
        }
        n
    }

    /// The number of a published structure, if remembered.
    pub fn number(&self, structure: &str) -> Option<u64> {
        self.numbers.get(structure).copied()
    }

    /// [`Since`] of the latest structure.
    pub fn since(&self) -> Arc<Since> {
        self.since.clone()
    }
}

/// A part of a Gateway's config whose serving state is reported.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// The Gateway as a whole: served once any config of it runs.
    Gateway,
    /// A listener by name.
    Listener(&'a str),
    /// A route by [`route_key`].
    Route(&'a str),
}

/// A data plane's rejection of a config version.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// The Pod that rejected it.
    pub pod: String,
    /// The version rejected.
    pub version: String,
    /// Why.
    pub error: String,
    /// Its [`Ledger`] number, when this replica knows the version.
    pub number: Option<u64>,
}

/// What the data planes of one Gateway run, against what they should run.
#[derive(Clone, Debug, Default)]
pub struct Serving {
    /// Since when each part of the current config has had its form.
    pub current: Arc<Since>,
    /// Per ready data-plane Pod that applied a config: that config's [`Ledger`] number (`None`
    /// when this replica does not know the version, e.g. one published before it started).
    pub running: Vec<Option<u64>>,
    /// The data planes' latest rejections.
    pub rejected: Vec<Rejection>,
}

impl Serving {
    /// `Ok` when a ready data plane runs `part` in its current form, else why not.
    pub fn check(&self, part: Part<'_>) -> Result<(), String> {
        let gateway = matches!(part, Part::Gateway);
        let Some(since) = self.current.get(part) else {
            // Not in the current config: nothing to wait for.
            return Ok(());
        };
        let has = |n: &Option<u64>| gateway || n.is_some_and(|n| n >= since);
        if self.running.iter().any(has) {
            return Ok(());
        }
        match self.rejected.iter().find(|r| has(&r.number)) {
            Some(r) => Err(format!(
                "data plane {} rejected config version {}: {}",
                r.pod, r.version, r.error
            )),
            // No version in the message: each new version would rewrite every waiting status.
            None => Err("waiting for a data plane to apply the current config".to_string()),
        }
    }
}

/// Per Gateway, what its data planes run.
pub type Served = BTreeMap<ObjectKey, Serving>;

/// The reason of a condition that waits for a data plane.
pub const PENDING: Reason = Reason::Pending;

fn pending(c: &mut Condition, why: &str) {
    *c = Condition::new(
        ConditionType::Programmed,
        false,
        PENDING,
        why,
        c.observed_generation,
    );
}

/// Overlays data-plane reality on a translation's statuses. Only the statuses are carried
/// over (configs, backends and parameters are left empty): at thousands of routes, copying
/// the configs too on every status pass cost as much as the overlay.
pub fn apply(t: &Translation, served: &Served) -> Translation {
    // Destructured whole, no `..`: a status field added to `Translation` must be decided here
    // (carried over or not), or this does not compile.
    let Translation {
        gateway_classes,
        gateways,
        http_routes,
        grpc_routes,
        tls_routes,
        tcp_routes,
        udp_routes,
        listener_sets,
        backend_tls_policies,
        parameters: _,
        configs: _,
        clusters: _,
    } = t;
    let mut out = Translation {
        gateway_classes: gateway_classes.clone(),
        gateways: gateways.clone(),
        http_routes: http_routes.clone(),
        grpc_routes: grpc_routes.clone(),
        tls_routes: tls_routes.clone(),
        tcp_routes: tcp_routes.clone(),
        udp_routes: udp_routes.clone(),
        listener_sets: listener_sets.clone(),
        backend_tls_policies: backend_tls_policies.clone(),
        ..Translation::default()
    };
    for (key, st) in &mut out.gateways {
        let Some(serving) = served.get(key) else {
            continue;
        };
        // The Gateway is programmed once a data plane runs any config of it.
        let gateway_ok = serving.check(Part::Gateway);
        for c in &mut st.conditions {
            if let (true, Err(why)) = (
                c.kind == ConditionType::Programmed && c.status == ConditionStatus::True,
                &gateway_ok,
            ) {
                pending(c, why);
            }
        }
        for l in &mut st.listeners {
            let Err(why) = serving.check(Part::Listener(&l.name)) else {
                continue;
            };
            for c in &mut l.conditions {
                if c.kind == ConditionType::Programmed && c.status == ConditionStatus::True {
                    pending(c, &why);
                }
            }
        }
    }
    for (set, st) in &mut out.listener_sets {
        let Some(serving) = served.get(&st.gateway) else {
            continue;
        };
        let owner = crate::translate::gateway::Owner::ListenerSet(set.clone());
        for l in &mut st.listeners {
            // The data plane knows the listener by its config name.
            let name = owner.config_name(&l.name);
            let Err(why) = serving.check(Part::Listener(&name)) else {
                continue;
            };
            for c in &mut l.conditions {
                if c.kind == ConditionType::Programmed && c.status == ConditionStatus::True {
                    pending(c, &why);
                }
            }
        }
        // The set is programmed once one of its listeners is.
        let any_programmed = st.listeners.iter().any(|l| {
            l.conditions
                .iter()
                .any(|c| c.kind == ConditionType::Programmed && c.status == ConditionStatus::True)
        });
        if !any_programmed {
            for c in &mut st.conditions {
                if c.kind == ConditionType::Programmed && c.status == ConditionStatus::True {
                    pending(c, "waiting for a data plane to apply its listeners");
                }
            }
        }
    }
    // A route's ListenerSet parent is served by the data plane of the set's Gateway.
    let set_gateways: BTreeMap<ObjectKey, ObjectKey> = out
        .listener_sets
        .iter()
        .map(|(k, st)| (k.clone(), st.gateway.clone()))
        .collect();
    for (kind, routes) in out.routes_mut() {
        for (route, parents) in routes.iter_mut() {
            // Copied only when a parent waits for its data plane.
            let waiting: Vec<(usize, String)> = parents
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.conditions.iter().any(|c| {
                        c.kind == ConditionType::Accepted && c.status == ConditionStatus::True
                    })
                })
                .filter_map(|(i, p)| Some((i, waits(kind, route, p, served, &set_gateways)?)))
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let parents = Arc::make_mut(parents);
            for (i, why) in waiting {
                for c in &mut parents[i].conditions {
                    if c.kind == ConditionType::Accepted && c.status == ConditionStatus::True {
                        c.status = ConditionStatus::Unknown;
                        c.reason = PENDING;
                        c.message = format!("valid; not yet serving: {why}");
                    }
                }
            }
        }
    }
    out
}

/// Why a route's parent is not yet served by its data plane, if it is not.
fn waits(
    kind: &str,
    route: &ObjectKey,
    p: &RouteParentStatus,
    served: &Served,
    set_gateways: &BTreeMap<ObjectKey, ObjectKey>,
) -> Option<String> {
    let parent = ObjectKey::new(
        p.parent_ref
            .namespace
            .clone()
            .unwrap_or_else(|| route.namespace.clone()),
        p.parent_ref.name.clone(),
    );
    let gw = if p.parent_ref.is_listener_set() {
        set_gateways.get(&parent)?.clone()
    } else {
        parent
    };
    let serving = served.get(&gw)?;
    let key = route_key(kind, &route.namespace, &route.name);
    // Accepted routes that are not in the config (e.g. only on unprogrammed listeners) have
    // nothing to wait for (`check` says Ok).
    serving.check(Part::Route(&key)).err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Options, Snapshot};

    fn cond<'a>(cs: &'a [Condition], kind: &str) -> &'a Condition {
        cs.iter().find(|c| c.kind.as_str() == kind).unwrap()
    }

    fn accepted(t: &Translation, route: &str) -> String {
        let c = cond(
            &t.http_routes[&ObjectKey::new("default", route)][0].conditions,
            "Accepted",
        );
        format!("{}/{}", c.status, c.reason)
    }

    #[test]
    fn listener_sets_and_their_routes_wait_for_the_data_plane_too() {
        let s = Snapshot::from_yaml(
            "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pylon}
spec: {controllerName: pylon.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: pylon
  allowedListeners: {namespaces: {from: Same}}
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: gw.example.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: set}
spec:
  parentRef: {name: gw}
  listeners: [{name: extra, port: 80, protocol: HTTP, hostname: set.example.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{kind: ListenerSet, name: set}]
",
            Options::default(),
        )
        .unwrap();
        let gw = ObjectKey::new("default", "gw");
        let set = ObjectKey::new("default", "set");
        let t = crate::translate::translate(&s);
        let mut ledger = Ledger::default();
        let n = ledger.record("s1", &Forms::of(&t.configs[&gw]));
        let serving = |running: Vec<Option<u64>>| {
            Served::from([(
                gw.clone(),
                Serving {
                    current: ledger.since(),
                    running,
                    rejected: vec![],
                },
            )])
        };
        let programmed = |h: &Translation| {
            let st = &h.listener_sets[&set];
            (
                cond(&st.conditions, "Programmed").reason,
                cond(&st.listeners[0].conditions, "Programmed").reason,
            )
        };
        let h = apply(&t, &serving(vec![]));
        assert_eq!(programmed(&h), (Reason::Pending, Reason::Pending));
        assert_eq!(accepted(&h, "a"), "Unknown/Pending");
        let h = apply(&t, &serving(vec![Some(n)]));
        assert_eq!(programmed(&h), (Reason::Programmed, Reason::Programmed));
        assert_eq!(accepted(&h, "a"), "True/Accepted");
    }

    #[test]
    fn pending_until_served_and_only_what_changed() {
        let mut s = Snapshot::from_yaml(
            crate::test_fixtures::ONE_GATEWAY_TWO_ROUTES,
            Options::default(),
        )
        .unwrap();
        let gw = ObjectKey::new("default", "gw");
        let t1 = crate::translate::translate(&s);
        let mut ledger = Ledger::default();
        let n1 = ledger.record("s1", &Forms::of(&t1.configs[&gw]));
        let serving = |ledger: &Ledger, running: Vec<Option<u64>>| Serving {
            current: ledger.since(),
            running,
            rejected: vec![],
        };

        // Nothing runs yet: everything pending, with a message that names no version (a new
        // version must not rewrite every waiting status).
        let h = apply(&t1, &Served::from([(gw.clone(), serving(&ledger, vec![]))]));
        let c = cond(&h.gateways[&gw].conditions, "Programmed");
        assert_eq!(c.reason, Reason::Pending);
        assert_eq!(
            c.message,
            "waiting for a data plane to apply the current config"
        );
        assert_eq!(
            cond(&h.gateways[&gw].listeners[0].conditions, "Programmed").reason,
            Reason::Pending
        );
        assert_eq!(accepted(&h, "a"), "Unknown/Pending");

        // A data plane runs structure 1: everything true.
        let h = apply(
            &t1,
            &Served::from([(gw.clone(), serving(&ledger, vec![Some(n1)]))]),
        );
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            ConditionStatus::True
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");

        // Route b changes, the data plane still runs structure 1: only b is pending.
        let b = ObjectKey::new("default", "b");
        let original = s.http_routes[&b].spec.hostnames.clone();
        std::sync::Arc::make_mut(s.http_routes.get_mut(&b).unwrap())
            .spec
            .hostnames = vec!["c.example.com".into()];
        let t2 = crate::translate::translate(&s);
        let n2 = ledger.record("s2", &Forms::of(&t2.configs[&gw]));
        let h = apply(
            &t2,
            &Served::from([(gw.clone(), serving(&ledger, vec![Some(n1)]))]),
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");
        assert_eq!(accepted(&h, "b"), "Unknown/Pending");
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            ConditionStatus::True
        );

        // A data plane running a version this replica does not know serves the Gateway but
        // proves nothing about its routes.
        let h = apply(
            &t2,
            &Served::from([(gw.clone(), serving(&ledger, vec![None]))]),
        );
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            ConditionStatus::True
        );
        assert_eq!(accepted(&h, "a"), "Unknown/Pending");

        // A rejection of structure 2 is reported on b, not on a (still served from 1).
        let mut rejected = serving(&ledger, vec![Some(n1)]);
        rejected.rejected = vec![Rejection {
            pod: "p".into(),
            version: "v2".into(),
            error: "bad".into(),
            number: Some(n2),
        }];
        let h = apply(&t2, &Served::from([(gw.clone(), rejected)]));
        let c = cond(&h.http_routes[&b][0].conditions, "Accepted");
        assert!(
            c.message
                .contains("data plane p rejected config version v2: bad"),
            "{}",
            c.message
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");

        // b's change undone: structure 1 is published again and is the latest; a data plane
        // still on 2 runs b in a form that is no longer current, one back on 1 runs it as is.
        std::sync::Arc::make_mut(s.http_routes.get_mut(&b).unwrap())
            .spec
            .hostnames = original;
        let t3 = crate::translate::translate(&s);
        assert_eq!(t3.configs[&gw], t1.configs[&gw]);
        let n3 = ledger.record("s1", &Forms::of(&t3.configs[&gw]));
        assert_eq!(ledger.number("s1"), Some(n3));
        let h = apply(
            &t1,
            &Served::from([(gw.clone(), serving(&ledger, vec![Some(n2)]))]),
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");
        assert_eq!(accepted(&h, "b"), "Unknown/Pending");
        let h = apply(
            &t1,
            &Served::from([(gw.clone(), serving(&ledger, vec![ledger.number("s1")]))]),
        );
        assert_eq!(accepted(&h, "b"), "True/Accepted");
    }

    #[test]
    fn a_ledger_remembers_thousands_of_structures_and_forgets_the_oldest() {
        let forms = Forms::default();
        let mut ledger = Ledger::default();
        let first = ledger.record("s0", &forms);
        for i in 1..REMEMBERED {
            ledger.record(&format!("s{i}"), &forms);
        }
        // Acked after 4,095 newer publications: still known (a 32-entry history was not).
        assert_eq!(ledger.number("s0"), Some(first));
        ledger.record("one more", &forms);
        assert_eq!(ledger.number("s0"), None);
        assert_eq!(ledger.number("s1"), Some(first + 1));
    }
}
