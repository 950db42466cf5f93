//! The one status writer: turns a [`Translation`] into status subresource patches.
//!
//! Merging is pure and tested here: conditions keep their lastTransitionTime unless their
//! status changed, route parent entries of other controllers are kept, and a status that differs
//! only in timestamps is not written. The writer itself is in [`crate::status_writer`].

use serde_json::{Value, json};

use crate::translate::output::{
    Condition, GatewayStatus, ListenerSetStatus, ListenerStatus, RouteParentStatus,
};

/// Merges desired conditions into existing ones (JSON), keeping lastTransitionTime when the
/// condition's status did not change.
pub fn merge_conditions(existing: Option<&Value>, desired: &[Condition], now: &str) -> Value {
    let old: Vec<Value> = existing
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let merged: Vec<Value> = desired
        .iter()
        .map(|c| {
            let prev = old.iter().find(|o| o["type"] == c.kind.as_str());
            let time = match prev {
                Some(p) if p["status"] == c.status.as_str() => {
                    p["lastTransitionTime"].as_str().unwrap_or(now).to_string()
                }
                _ => now.to_string(),
            };
            json!({
                "type": c.kind,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "observedGeneration": c.observed_generation,
                "lastTransitionTime": time,
            })
        })
        .collect();
    Value::Array(merged)
}

/// GatewayClass status JSON.
pub fn gateway_class_status(
    existing: &Value,
    desired: &crate::translate::output::GatewayClassStatus,
    now: &str,
) -> Value {
    json!({
        "conditions": merge_conditions(existing.get("conditions"), &desired.conditions, now),
        "supportedFeatures": desired.supported_features.iter().map(|f| json!({"name": f})).collect::<Vec<_>>(),
    })
}

/// Gateway status JSON.
pub fn gateway_status(existing: &Value, desired: &GatewayStatus, now: &str) -> Value {
    let mut status = json!({
        "conditions": merge_conditions(existing.get("conditions"), &desired.conditions, now),
        "listeners": listener_statuses(existing, &desired.listeners, now),
    });
    if !desired.addresses.is_empty() {
        status["addresses"] = desired
            .addresses
            .iter()
            .map(|a| json!({"type": a.kind, "value": a.value}))
            .collect();
    }
    if let Some(n) = desired.attached_listener_sets {
        status["attachedListenerSets"] = n.into();
    }
    status
}

/// The whole status of a ListenerSet.
pub fn listener_set_status(existing: &Value, desired: &ListenerSetStatus, now: &str) -> Value {
    json!({
        "conditions": merge_conditions(existing.get("conditions"), &desired.conditions, now),
        "listeners": listener_statuses(existing, &desired.listeners, now),
    })
}

/// Listener entries (Gateway and ListenerSet statuses share the shape), keeping each
/// condition's transition time.
fn listener_statuses(existing: &Value, desired: &[ListenerStatus], now: &str) -> Vec<Value> {
    let old_listeners = existing
        .get("listeners")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    desired
        .iter()
        .map(|l| {
            let prev = old_listeners.iter().find(|o| o["name"] == l.name.as_str());
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": merge_conditions(prev.and_then(|p| p.get("conditions")), &l.conditions, now),
            })
        })
        .collect()
}

/// Route status JSON: our parent entries replaced, other controllers' entries kept, our stale
/// entries (parents no longer referenced) dropped.
pub fn route_status(
    existing: &Value,
    desired: &[RouteParentStatus],
    controller_name: &str,
    now: &str,
) -> Value {
    entries_status(existing, desired, controller_name, now, Entries::ROUTE)
}

/// Field names of per-controller status lists: route `parents`/`parentRef`, policy
/// `ancestors`/`ancestorRef`.
#[derive(Clone, Copy, PartialEq)]
pub struct Entries {
    list: &'static str,
    reference: &'static str,
}

impl Entries {
    /// Routes.
    pub const ROUTE: Entries = Entries {
        list: "parents",
        reference: "parentRef",
    };
    /// Policies.
    pub const POLICY: Entries = Entries {
        list: "ancestors",
        reference: "ancestorRef",
    };
}

/// Status with a per-controller list (routes, policies): ours replaced, others' kept.
pub fn entries_status(
    existing: &Value,
    desired: &[RouteParentStatus],
    controller_name: &str,
    now: &str,
    fields: Entries,
) -> Value {
    let Entries { list, reference } = fields;
    let old = existing
        .get(list)
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let mut parents: Vec<Value> = old
        .iter()
        .filter(|p| p["controllerName"] != controller_name)
        .cloned()
        .collect();
    for d in desired {
        let parent_ref = serde_json::to_value(&d.parent_ref).unwrap_or(Value::Null);
        let prev = old.iter().find(|p| {
            p["controllerName"] == controller_name && same_parent(&p[reference], &parent_ref)
        });
        parents.push(json!({
            reference: parent_ref,
            "controllerName": controller_name,
            "conditions": merge_conditions(prev.and_then(|p| p.get("conditions")), &d.conditions, now),
        }));
    }
    json!({ list: parents })
}

/// Compares parentRefs with the API's defaults applied on both sides.
fn same_parent(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| {
        (
            v["group"]
                .as_str()
                .unwrap_or(crate::model::GATEWAY_GROUP)
                .to_string(),
            v["kind"].as_str().unwrap_or("Gateway").to_string(),
            v["namespace"].as_str().map(str::to_string),
            v["name"].as_str().map(str::to_string),
            v["sectionName"].as_str().map(str::to_string),
            v["port"].as_i64(),
        )
    };
    norm(a) == norm(b)
}

/// Whether two statuses differ in more than lastTransitionTime values.
pub fn differs(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(a) != strip(b)
}

/// The current time as the API's RFC 3339 seconds.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default();
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::reason::{ConditionType, Reason};

    fn cond(kind: ConditionType, ok: bool, reason: Reason) -> Condition {
        Condition::new(kind, ok, reason, "m", 2)
    }

    #[test]
    fn keeps_transition_time_when_status_unchanged() {
        let old = json!([
            {"type": "Accepted", "status": "True", "reason": "Old", "message": "x",
             "observedGeneration": 1, "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "x",
             "observedGeneration": 1, "lastTransitionTime": "2020-01-01T00:00:00Z"}
        ]);
        let merged = merge_conditions(
            Some(&old),
            &[
                cond(ConditionType::Accepted, true, Reason::Accepted),
                cond(ConditionType::Programmed, false, Reason::Invalid),
            ],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(merged[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(merged[0]["reason"], "Accepted");
        assert_eq!(merged[0]["observedGeneration"], 2);
        assert_eq!(merged[1]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn timestamp_only_changes_are_not_writes() {
        let a = json!({"conditions": [{"type": "A", "lastTransitionTime": "1"}]});
        let b = json!({"conditions": [{"type": "A", "lastTransitionTime": "2"}]});
        let c =
            json!({"conditions": [{"type": "A", "lastTransitionTime": "2", "status": "False"}]});
        assert!(!differs(&a, &b));
        assert!(differs(&a, &c));
    }

    #[test]
    fn keeps_other_controllers_parents() {
        let old = json!({"parents": [
            {"controllerName": "example.com/other", "parentRef": {"name": "x"}, "conditions": []},
            {"controllerName": "pylon.dev/gateway-controller", "parentRef": {"name": "stale"}, "conditions": []},
            {"controllerName": "pylon.dev/gateway-controller", "parentRef": {"name": "gw"},
             "conditions": [{"type": "Accepted", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
        ]});
        let desired = vec![RouteParentStatus {
            parent_ref: serde_json::from_value(json!({"name": "gw"})).unwrap(),
            conditions: vec![cond(ConditionType::Accepted, true, Reason::Accepted)],
        }];
        let st = route_status(
            &old,
            &desired,
            "pylon.dev/gateway-controller",
            "2026-01-01T00:00:00Z",
        );
        let parents = st["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 2, "{st}");
        assert_eq!(parents[0]["controllerName"], "example.com/other");
        assert_eq!(parents[1]["parentRef"]["name"], "gw");
        assert_eq!(
            parents[1]["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
    }
}
