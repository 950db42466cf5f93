//! Honest status: a Gateway is Programmed, and a route Accepted on it, only once a data plane
//! of that Gateway has applied (acked) a config version that contains the current translation.
//!
//! Translation stays pure; this step overlays what the data planes reported.

use std::collections::BTreeMap;

use crate::model::ObjectKey;
use crate::translate::output::{Condition, RouteParentStatus, Translation};

/// Per Gateway: `Ok(())` when a data plane runs the current config, otherwise why not.
pub type Served = BTreeMap<ObjectKey, Result<(), String>>;

/// Overlays data-plane reality on a translation's statuses.
pub fn apply(t: &Translation, served: &Served) -> Translation {
    let mut out = t.clone();
    for (key, st) in &mut out.gateways {
        let Some(Err(why)) = served.get(key) else {
            continue;
        };
        // Listeners are not serving either until a data plane runs the config.
        let listener_conditions = st
            .listeners
            .iter_mut()
            .flat_map(|l| l.conditions.iter_mut());
        for c in st.conditions.iter_mut().chain(listener_conditions) {
            if c.kind == "Programmed" && c.status == "True" {
                *c = Condition::new(
                    "Programmed",
                    false,
                    "Pending",
                    why.clone(),
                    c.observed_generation,
                );
            }
        }
    }
    for routes in [&mut out.http_routes, &mut out.grpc_routes] {
        for (route, parents) in routes.iter_mut() {
            for p in parents.iter_mut() {
                pend(route, p, served);
            }
        }
    }
    out
}

fn pend(route: &ObjectKey, p: &mut RouteParentStatus, served: &Served) {
    let gw = ObjectKey::new(
        p.parent_ref
            .namespace
            .clone()
            .unwrap_or_else(|| route.namespace.clone()),
        p.parent_ref.name.clone(),
    );
    let Some(Err(why)) = served.get(&gw) else {
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
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
"#;

    fn cond<'a>(cs: &'a [Condition], kind: &str) -> &'a Condition {
        cs.iter().find(|c| c.kind == kind).unwrap()
    }

    #[test]
    fn pending_until_acked() {
        let s = Snapshot::from_yaml(INPUT, Options::default()).unwrap();
        let t = crate::translate::translate(&s);
        let gw = ObjectKey::new("default", "gw");
        let route = ObjectKey::new("default", "r");
        let waiting = Served::from([(gw.clone(), Err("no data plane has acked version 3".into()))]);
        let h = apply(&t, &waiting);
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").reason,
            "Pending"
        );
        let listener = &h.gateways[&gw].listeners[0];
        assert_eq!(cond(&listener.conditions, "Programmed").reason, "Pending");
        let accepted = cond(&h.http_routes[&route][0].conditions, "Accepted");
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("Unknown", "Pending")
        );

        let ok = Served::from([(gw.clone(), Ok(()))]);
        let h = apply(&t, &ok);
        assert_eq!(
            cond(&h.gateways[&gw].conditions, "Programmed").status,
            "True"
        );
        assert_eq!(
            cond(&h.http_routes[&route][0].conditions, "Accepted").status,
            "True"
        );
    }
}
