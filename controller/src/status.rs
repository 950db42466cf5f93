//! The one status writer: turns a [`Translation`] into status subresource patches.
//!
//! Merging is pure and tested here: conditions keep their lastTransitionTime unless their
//! status changed, route parent entries of other controllers are kept, and a status that differs
//! only in timestamps is not written. The writer patches with the object's resourceVersion so a
//! concurrent writer makes it re-read and retry instead of clobbering.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::model::ObjectKey;
use crate::translate::output::{Condition, GatewayStatus, RouteParentStatus, Translation};

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
    let old_listeners = existing
        .get("listeners")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    let listeners: Vec<Value> = desired
        .listeners
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
        .collect();
    let mut status = json!({
        "conditions": merge_conditions(existing.get("conditions"), &desired.conditions, now),
        "listeners": listeners,
    });
    if !desired.addresses.is_empty() {
        status["addresses"] = desired
            .addresses
            .iter()
            .map(|a| json!({"type": a.kind, "value": a.value}))
            .collect();
    }
    status
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
#[derive(Clone, Copy)]
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

/// What went wrong writing one status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The API call failed.
    #[error("{kind} {key}: {source}")]
    Api {
        /// Kind.
        kind: &'static str,
        /// Object.
        key: String,
        /// Cause.
        source: kube::Error,
    },
    /// Conflicts kept happening.
    #[error("{kind} {key}: still conflicting after {attempts} attempts")]
    Conflict {
        /// Kind.
        kind: &'static str,
        /// Object.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        crate::model::GATEWAY_GROUP,
        "v1",
        kind,
    ))
}

/// The status writer: one task, fed the latest translation.
pub struct StatusWriter {
    client: kube::Client,
    controller_name: String,
    /// Last status written per object, to skip writes without re-reading.
    written: BTreeMap<(&'static str, ObjectKey), Value>,
    /// Whether the last pass had failures.
    failed: bool,
}

impl StatusWriter {
    /// Creates a writer.
    pub fn new(client: kube::Client, controller_name: String) -> Self {
        Self {
            client,
            controller_name,
            written: BTreeMap::new(),
            failed: false,
        }
    }

    /// Writes every status of a translation that changed; returns the number of writes.
    pub async fn write(&mut self, t: &Translation) -> usize {
        let mut writes = 0;
        self.failed = false;
        let now = now_rfc3339();
        for (name, st) in &t.gateway_classes {
            let key = ObjectKey::new("", name.clone());
            let r = self
                .apply("GatewayClass", &key, |old| {
                    gateway_class_status(old, st, &now)
                })
                .await;
            writes += self.count(r);
        }
        for (key, st) in &t.gateways {
            let r = self
                .apply("Gateway", key, |old| gateway_status(old, st, &now))
                .await;
            writes += self.count(r);
        }
        let controller = self.controller_name.clone();
        for (kind, routes, fields) in [
            ("HTTPRoute", &t.http_routes, Entries::ROUTE),
            ("GRPCRoute", &t.grpc_routes, Entries::ROUTE),
            ("BackendTLSPolicy", &t.backend_tls_policies, Entries::POLICY),
        ] {
            for (key, parents) in routes {
                let r = self
                    .apply(kind, key, |old| {
                        entries_status(old, parents, &controller, &now, fields)
                    })
                    .await;
                writes += self.count(r);
            }
        }
        writes
    }

    fn count(&mut self, r: Result<bool, StatusError>) -> usize {
        match r {
            Ok(written) => usize::from(written),
            Err(e) => {
                tracing::warn!(error = %e, "status write failed; will retry");
                self.failed = true;
                0
            }
        }
    }

    /// Whether the last [`StatusWriter::write`] left statuses unwritten (the caller retries).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Reads the object, merges, and patches with its resourceVersion; retries on conflict.
    async fn apply(
        &mut self,
        kind: &'static str,
        key: &ObjectKey,
        build: impl Fn(&Value) -> Value,
    ) -> Result<bool, StatusError> {
        let ar = resource(kind);
        let api: Api<DynamicObject> = if key.namespace.is_empty() {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &key.namespace, &ar)
        };
        // Unchanged since our last write: skip without even reading the object.
        if let Some(prev) = self.written.get(&(kind, key.clone()))
            && !differs(prev, &build(prev))
        {
            return Ok(false);
        }
        let err = |source| StatusError::Api {
            kind,
            key: key.to_string(),
            source,
        };
        const ATTEMPTS: u32 = 5;
        for _ in 0..ATTEMPTS {
            let obj = match api.get_opt(&key.name).await.map_err(err)? {
                Some(o) => o,
                None => return Ok(false),
            };
            let old = obj.data.get("status").cloned().unwrap_or(Value::Null);
            let new = build(&old);
            if !differs(&old, &new) {
                self.written.insert((kind, key.clone()), new);
                return Ok(false);
            }
            let patch = json!({
                "metadata": {"resourceVersion": obj.metadata.resource_version},
                "status": new,
            });
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.written.insert((kind, key.clone()), new);
                    return Ok(true);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Err(StatusError::Conflict {
            kind,
            key: key.to_string(),
            attempts: ATTEMPTS,
        })
    }
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

    fn cond(kind: &str, ok: bool, reason: &str) -> Condition {
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
                cond("Accepted", true, "Accepted"),
                cond("Programmed", false, "Invalid"),
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
            conditions: vec![cond("Accepted", true, "Accepted")],
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
