//! Honest status: a Gateway is Programmed, a listener Programmed and a route Accepted on it only
//! once a data plane of that Gateway has applied (acked) a config version containing that
//! listener or route *in its current form*.
//!
//! Each published config records, per listener and per route, the version since which its
//! data-plane form is unchanged ([`Since`]); a change to one route therefore only makes that
//! route Pending, never its neighbours. Translation stays pure; this step overlays what the
//! data planes reported.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use pylon_dataplane::config as dp;

use crate::model::ObjectKey;
use crate::translate::output::{Condition, RouteParentStatus, Translation};

/// Since which config version each listener and route of a Gateway has had its current form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Since {
    /// Listener name → (fingerprint, version).
    pub listeners: BTreeMap<String, (u64, u64)>,
    /// "Kind/namespace/name" → (fingerprint, version).
    pub routes: BTreeMap<String, (u64, u64)>,
}

fn fingerprint<T: serde::Serialize>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The key of a route in [`Since::routes`].
pub fn route_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Since {
    /// The record after publishing `config` as `version`: unchanged entries keep their version.
    pub fn advance(&self, config: &dp::Config, version: u64) -> Since {
        let mut listeners = BTreeMap::new();
        // Per route: its entries on every listener, and the backends (minus endpoints, which
        // change freely) they use.
        let mut route_forms: BTreeMap<String, (Vec<String>, BTreeMap<String, String>)> =
            BTreeMap::new();
        for l in &config.listeners {
            let mut bare = l.clone();
            bare.routes.clear();
            listeners.insert(l.name.clone(), fingerprint(&bare));
            for r in &l.routes {
                let kind = serde_json::to_value(r.kind).ok();
                let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("Route");
                let entry = route_forms
                    .entry(route_key(kind, &r.namespace, &r.name))
                    .or_default();
                entry.0.push(format!(
                    "{}:{}",
                    l.name,
                    serde_json::to_string(r).unwrap_or_default()
                ));
                for name in used_backends(r) {
                    if let Some(b) = config.backends.get(&name) {
                        let mut b = b.clone();
                        b.endpoints.clear();
                        entry
                            .1
                            .insert(name, serde_json::to_string(&b).unwrap_or_default());
                    }
                }
            }
        }
        let keep = |old: &BTreeMap<String, (u64, u64)>, k: &str, fp: u64| match old.get(k) {
            Some((prev, since)) if *prev == fp => (fp, *since),
            _ => (fp, version),
        };
        Since {
            listeners: listeners
                .into_iter()
                .map(|(k, fp)| {
                    let v = keep(&self.listeners, &k, fp);
                    (k, v)
                })
                .collect(),
            routes: route_forms
                .into_iter()
                .map(|(k, (mut forms, backends))| {
                    forms.sort();
                    let fp = fingerprint(&(forms, backends));
                    let v = keep(&self.routes, &k, fp);
                    (k, v)
                })
                .collect(),
        }
    }
}

/// Names of the backends a route refers to (weighted backends and mirrors, at any level).
fn used_backends(r: &dp::Route) -> Vec<String> {
    let mirrors = |filters: &[dp::Filter]| -> Vec<String> {
        filters
            .iter()
            .filter_map(|f| match f {
                dp::Filter::RequestMirror(m) => Some(m.backend.clone()),
                _ => None,
            })
            .collect()
    };
    let mut out = vec![];
    for rule in &r.rules {
        out.extend(mirrors(&rule.filters));
        for b in &rule.backend_refs {
            if let dp::BackendRef::Backend(t) = b {
                out.push(t.name.clone());
                out.extend(mirrors(&t.filters));
            }
        }
    }
    out
}

/// What the data planes of one Gateway report.
#[derive(Clone, Debug, Default)]
pub struct Serving {
    /// Highest config version a data plane applied.
    pub acked: Option<u64>,
    /// The newest rejection, if newer than `acked`: (pod, version, error).
    pub rejected: Option<(String, u64, String)>,
    /// The current config's [`Since`] record.
    pub since: Since,
    /// The current snapshot version.
    pub current: u64,
}

impl Serving {
    /// `Ok` when a data plane runs version `needed` or newer, else why not.
    fn check(&self, needed: u64) -> Result<(), String> {
        if self.acked.is_some_and(|a| a >= needed) {
            return Ok(());
        }
        match &self.rejected {
            Some((pod, v, e)) if *v >= needed => {
                Err(format!("data plane {pod} rejected config version {v}: {e}"))
            }
            _ => Err(format!(
                "waiting for a data plane to apply config version {needed}"
            )),
        }
    }
}

/// Per Gateway, what its data planes run.
pub type Served = BTreeMap<ObjectKey, Serving>;

fn pending(c: &mut Condition, why: &str) {
    *c = Condition::new("Programmed", false, "Pending", why, c.observed_generation);
}

/// Overlays data-plane reality on a translation's statuses.
pub fn apply(t: &Translation, served: &Served) -> Translation {
    let mut out = t.clone();
    for (key, st) in &mut out.gateways {
        let Some(serving) = served.get(key) else {
            continue;
        };
        // The Gateway is programmed once a data plane runs any config of it.
        let gateway_ok = match serving.acked {
            Some(_) => Ok(()),
            None => serving.check(serving.current),
        };
        for c in &mut st.conditions {
            if let (true, Err(why)) = (c.kind == "Programmed" && c.status == "True", &gateway_ok) {
                pending(c, why);
            }
        }
        for l in &mut st.listeners {
            let needed = serving.since.listeners.get(&l.name).map(|(_, v)| *v);
            let Some(Err(why)) = needed.map(|n| serving.check(n)) else {
                continue;
            };
            for c in &mut l.conditions {
                if c.kind == "Programmed" && c.status == "True" {
                    pending(c, &why);
                }
            }
        }
    }
    for (kind, routes) in [
        ("HTTPRoute", &mut out.http_routes),
        ("GRPCRoute", &mut out.grpc_routes),
    ] {
        for (route, parents) in routes.iter_mut() {
            for p in parents.iter_mut() {
                pend(kind, route, p, served);
            }
        }
    }
    out
}

fn pend(kind: &str, route: &ObjectKey, p: &mut RouteParentStatus, served: &Served) {
    let gw = ObjectKey::new(
        p.parent_ref
            .namespace
            .clone()
            .unwrap_or_else(|| route.namespace.clone()),
        p.parent_ref.name.clone(),
    );
    let Some(serving) = served.get(&gw) else {
        return;
    };
    let key = route_key(kind, &route.namespace, &route.name);
    // Accepted routes that are not in the config (e.g. only on unprogrammed listeners) have
    // nothing to wait for.
    let Some((_, needed)) = serving.since.routes.get(&key) else {
        return;
    };
    let Err(why) = serving.check(*needed) else {
        return;
    };
    for c in &mut p.conditions {
        if c.kind == "Accepted" && c.status == "True" {
            c.status = "Unknown".into();
            c.reason = "Pending".into();
            c.message = format!("valid; not yet serving: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Options, Snapshot};

    const INPUT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pylon}
spec: {controllerName: pylon.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: pylon
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: pylon-gw}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 10.0.0.1}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  parentRefs: [{name: gw}]
  hostnames: [b.example.com]
"#;

    fn cond<'a>(cs: &'a [Condition], kind: &str) -> &'a Condition {
        cs.iter().find(|c| c.kind == kind).unwrap()
    }

    fn accepted(t: &Translation, route: &str) -> String {
        let c = cond(
            &t.http_routes[&ObjectKey::new("default", route)][0].conditions,
            "Accepted",
        );
        format!("{}/{}", c.status, c.reason)
    }

    #[test]
    fn pending_until_acked_and_only_what_changed() {
        let mut s = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
        let gw = ObjectKey::new("default", "gw");
        let t1 = crate::translate::translate(&s);
        let since1 = Since::default().advance(&t1.configs[&gw], 1);

        // Nothing acked yet: everything pending.
        let serving = |acked, since: &Since, current| Serving {
            acked,
            rejected: None,
            since: since.clone(),
            current,
        };
        let h = apply(
            &t1,
            &Served::from([(gw.clone(), serving(None, &since1, 1))]),
        );
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").reason,
            "Pending"
        );
        assert_eq!(
            cond(&h.gateways[&gw].listeners[0].conditions, "Programmed").reason,
            "Pending"
        );
        assert_eq!(accepted(&h, "a"), "Unknown/Pending");

        // Version 1 acked: everything true.
        let h = apply(
            &t1,
            &Served::from([(gw.clone(), serving(Some(1), &since1, 1))]),
        );
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            "True"
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");

        // Route b changes (version 2), data plane still on 1: only b is pending.
        let b = ObjectKey::new("default", "b");
        s.http_routes.get_mut(&b).unwrap().spec.hostnames = vec!["c.example.com".into()];
        let t2 = crate::translate::translate(&s);
        let since2 = since1.advance(&t2.configs[&gw], 2);
        let h = apply(
            &t2,
            &Served::from([(gw.clone(), serving(Some(1), &since2, 2))]),
        );
        assert_eq!(accepted(&h, "a"), "True/Accepted");
        assert_eq!(accepted(&h, "b"), "Unknown/Pending");
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            "True"
        );

        // A rejection of version 2 is reported on b.
        let mut rejected = serving(Some(1), &since2, 2);
        rejected.rejected = Some(("p".into(), 2, "bad".into()));
        let h = apply(&t2, &Served::from([(gw.clone(), rejected)]));
        let c = cond(&h.http_routes[&b][0].conditions, "Accepted");
        assert!(
            c.message.contains("rejected config version 2: bad"),
            "{}",
            c.message
        );
    }
}
