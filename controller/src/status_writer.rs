//! The one status writer: applies a [`Translation`]'s statuses to the API server.
//!
//! It reads current statuses from the reflector stores (no GET per object), skips objects whose
//! status would not change, and patches the rest concurrently with the object's
//! resourceVersion, so a concurrent writer makes it re-read (GET) and retry instead of
//! clobbering.

use std::collections::BTreeMap;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::model::ObjectKey;
use crate::status::{
    Entries, differs, entries_status, gateway_class_status, gateway_status, now_rfc3339,
};
use crate::translate::output::{
    GatewayClassStatus, GatewayStatus, ListenerSetStatus, ParentStatuses, Translation,
};
use crate::watch::Stores;

/// Patches in flight at once.
pub const CONCURRENCY: usize = 16;
/// Attempts per object when patches conflict.
pub const ATTEMPTS: u32 = 5;

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

/// The desired status of one object (owned, so writes can run concurrently in a task).
#[derive(Clone, PartialEq)]
enum Desired {
    Class(GatewayClassStatus),
    Gateway(GatewayStatus),
    ListenerSet(ListenerSetStatus),
    Entries(ParentStatuses, Entries),
}

impl Desired {
    fn build(&self, old: &Value, controller: &str, now: &str) -> Value {
        match self {
            Desired::Class(st) => gateway_class_status(old, st, now),
            Desired::Gateway(st) => gateway_status(old, st, now),
            Desired::ListenerSet(st) => crate::status::listener_set_status(old, st, now),
            Desired::Entries(parents, fields) => {
                entries_status(old, parents, controller, now, *fields)
            }
        }
    }
}

/// The resource a kind's status is written to: the version it is watched at (TCPRoute and
/// UDPRoute are v1alpha2 in the pinned CRDs, and v1 is not served for them).
fn resource(kind: &str) -> ApiResource {
    crate::kinds::gateway_api(kind)
}

/// What the writer last wrote to (or found current on) one object.
struct Written {
    /// The uid of the object it was written to: a deleted and recreated object starts with no
    /// status.
    uid: Option<String>,
    /// The status as written.
    status: Value,
    /// What it was built from: the same desired status again needs no write, and comparing
    /// the typed values is what keeps a translation that changed one route of thousands from
    /// rebuilding and comparing every route's JSON status (about 10 µs each).
    desired: Desired,
}

/// The status writer: one task, fed the latest translation.
pub struct StatusWriter {
    client: kube::Client,
    controller_name: String,
    stores: Option<Stores>,
    /// Last status written (or found current) per object, to skip unchanged ones.
    written: BTreeMap<(&'static str, ObjectKey), Written>,
    failed: bool,
}

impl StatusWriter {
    /// Creates a writer; with `stores`, current statuses are read from the watch caches.
    pub fn new(client: kube::Client, controller_name: String, stores: Option<Stores>) -> Self {
        Self {
            client,
            controller_name,
            stores,
            written: BTreeMap::new(),
            failed: false,
        }
    }

    /// Whether an object carries a status entry of ours: written by this writer (to the object
    /// of that uid) or, e.g. by an earlier leader, seen in the watch cache.
    pub fn has_status(&self, kind: &'static str, key: &ObjectKey) -> bool {
        let stores = self.stores.as_ref();
        let uid = stores.and_then(|s| s.uid_of(kind, key));
        if let Some(w) = self.written.get(&(kind, key.clone()))
            && w.uid == uid
            && !w.status.is_null()
        {
            return true;
        }
        let Some((status, _)) = stores.and_then(|s| s.status_of(kind, key)) else {
            return false;
        };
        status["parents"].as_array().is_some_and(|parents| {
            parents
                .iter()
                .any(|p| p["controllerName"].as_str() == Some(self.controller_name.as_str()))
        })
    }

    /// Whether the last [`StatusWriter::write`] left statuses unwritten (the caller retries).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Writes every status of a translation that changed; returns the number of writes.
    pub async fn write(&mut self, t: &Translation) -> usize {
        let now = now_rfc3339();
        let mut jobs: Vec<(&'static str, ObjectKey, Desired)> = vec![];
        for (name, st) in &t.gateway_classes {
            jobs.push((
                "GatewayClass",
                ObjectKey::new("", name.clone()),
                Desired::Class(st.clone()),
            ));
        }
        for (key, st) in &t.gateways {
            jobs.push(("Gateway", key.clone(), Desired::Gateway(st.clone())));
        }
        for (key, st) in &t.listener_sets {
            jobs.push(("ListenerSet", key.clone(), Desired::ListenerSet(st.clone())));
        }
        let routes = t
            .routes()
            .map(|(kind, entries)| (kind, entries, Entries::ROUTE));
        let policies = [("BackendTLSPolicy", &t.backend_tls_policies, Entries::POLICY)];
        for (kind, entries, fields) in routes.into_iter().chain(policies) {
            for (key, parents) in entries {
                jobs.push((kind, key.clone(), Desired::Entries(parents.clone(), fields)));
            }
        }
        let controller = self.controller_name.clone();
        // Unchanged since our last write to this very object: skip without reading anything.
        let stores = self.stores.as_ref();
        jobs.retain(|(kind, key, desired)| {
            needs_write(
                self.written.get(&(*kind, key.clone())),
                stores.and_then(|s| s.uid_of(kind, key)),
                desired,
                |prev| desired.build(prev, &controller, &now),
            )
        });
        let writes: Vec<_> = jobs
            .into_iter()
            .map(|(kind, key, desired)| {
                let (client, stores) = (self.client.clone(), self.stores.clone());
                let (controller, now) = (controller.clone(), now.clone());
                let last = self
                    .written
                    .get(&(kind, key.clone()))
                    .map(|w| w.status.clone());
                async move {
                    let r = apply(
                        &client,
                        stores.as_ref(),
                        kind,
                        &key,
                        &desired,
                        last.as_ref(),
                        &controller,
                        &now,
                    )
                    .await;
                    (kind, key, desired, r)
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.failed = false;
        let mut writes = 0;
        for (kind, key, desired, r) in results {
            match r {
                Ok((wrote, status)) => {
                    writes += usize::from(wrote);
                    let uid = self.stores.as_ref().and_then(|s| s.uid_of(kind, &key));
                    let w = Written {
                        uid,
                        status,
                        desired,
                    };
                    self.written.insert((kind, key), w);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "status write failed; will retry");
                    self.failed = true;
                }
            }
        }
        writes
    }
}

/// Whether an object's status must be (re)considered for writing: never written, written to
/// an earlier object of the same name (another uid), or wanted other than last time and the
/// status `build` makes of that on the last written one differs from it in more than
/// timestamps. The same desired status as last time is never built.
fn needs_write(
    written: Option<&Written>,
    current_uid: Option<String>,
    desired: &Desired,
    build: impl FnOnce(&Value) -> Value,
) -> bool {
    match written {
        None => true,
        Some(w) if w.uid != current_uid => true,
        Some(w) if w.desired == *desired => false,
        Some(w) => differs(&w.status, &build(&w.status)),
    }
}

/// What to do with a status read from the watch cache or the API server.
#[derive(Debug, PartialEq)]
enum Step {
    /// It already says what we want.
    Skip,
    /// The watch cache cannot be trusted here: read the object from the API server.
    ReadFresh,
    /// Patch it.
    Write,
}

/// Decides on `old` (from the watch cache when `from_cache`), given the status this writer
/// last wrote (`last`) and the one it wants (`new`).
fn next_step(old: &Value, from_cache: bool, last: Option<&Value>, new: &Value) -> Step {
    if differs(old, new) {
        return Step::Write;
    }
    // The watch cache may not have seen our last write yet: when it still shows what we want
    // now but we since wrote something else (Programmed, then Pending, then Programmed again
    // within a few milliseconds), the object holds our last write. Skipping would leave that
    // stale status in place until something else changes.
    if from_cache && last.is_some_and(|l| differs(l, new)) {
        Step::ReadFresh
    } else {
        Step::Skip
    }
}

/// Merges and patches one object's status; `Ok((written, status))`. `last` is the status this
/// writer last wrote to the object.
#[allow(clippy::too_many_arguments)]
async fn apply(
    client: &kube::Client,
    stores: Option<&Stores>,
    kind: &'static str,
    key: &ObjectKey,
    desired: &Desired,
    last: Option<&Value>,
    controller: &str,
    now: &str,
) -> Result<(bool, Value), StatusError> {
    let ar = resource(kind);
    let api: Api<DynamicObject> = if key.namespace.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), &key.namespace, &ar)
    };
    let err = |source| StatusError::Api {
        kind,
        key: key.to_string(),
        source,
    };
    let mut trust_cache = true;
    for _ in 0..ATTEMPTS {
        // First from the watch cache; after a conflict, fresh from the API server.
        let cached = if trust_cache {
            stores.and_then(|s| s.status_of(kind, key))
        } else {
            None
        };
        let from_cache = cached.is_some();
        trust_cache = false;
        let (old, resource_version) = match cached {
            Some(c) => c,
            None => match api.get_opt(&key.name).await.map_err(err)? {
                Some(o) => (
                    o.data.get("status").cloned().unwrap_or(Value::Null),
                    o.metadata.resource_version.clone(),
                ),
                None => return Ok((false, Value::Null)),
            },
        };
        let new = desired.build(&old, controller, now);
        match next_step(&old, from_cache, last, &new) {
            Step::Skip => return Ok((false, new)),
            Step::ReadFresh => continue,
            Step::Write => {}
        }
        let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": new});
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok((true, new)),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok((false, Value::Null)),
            Err(e) => return Err(err(e)),
        }
    }
    Err(StatusError::Conflict {
        kind,
        key: key.to_string(),
        attempts: ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::reason::{ConditionType, Reason};

    #[test]
    fn status_is_written_at_the_version_each_kind_is_watched_at() {
        // A kind's status at a version the CRD does not serve is a 404: every write fails.
        for kind in [
            "Gateway",
            "HTTPRoute",
            "TLSRoute",
            "TCPRoute",
            "UDPRoute",
            "ListenerSet",
        ] {
            let watched = crate::kinds::gateway_api(kind);
            let written = resource(kind);
            assert_eq!(
                (written.version.as_str(), written.plural.as_str()),
                (watched.version.as_str(), watched.plural.as_str()),
                "{kind}"
            );
        }
        assert_eq!(resource("UDPRoute").version, "v1alpha2");
        assert_eq!(resource("TCPRoute").plural, "tcproutes");
    }

    #[test]
    fn skips_only_unchanged_status_of_the_same_object() {
        let status = json!({"parents": [{"conditions": [{"type": "Accepted", "status": "True"}]}]});
        let class = |reason: Reason| {
            Desired::Class(GatewayClassStatus {
                conditions: vec![crate::translate::output::Condition::new(
                    ConditionType::Accepted,
                    true,
                    reason,
                    "",
                    1,
                )],
                supported_features: vec![],
            })
        };
        let written = Written {
            uid: Some("uid-1".into()),
            status: status.clone(),
            desired: class(Reason::Accepted),
        };
        let same = |_: &Value| status.clone();
        let uid = || Some("uid-1".to_string());
        assert!(needs_write(None, uid(), &class(Reason::Accepted), same));
        // What was wanted last time is not even built again.
        let unbuilt = |_: &Value| -> Value { panic!("built an unchanged status") };
        assert!(!needs_write(
            Some(&written),
            uid(),
            &class(Reason::Accepted),
            unbuilt
        ));
        // Wanted otherwise, but it comes out the same.
        assert!(!needs_write(
            Some(&written),
            uid(),
            &class(Reason::Pending),
            same
        ));
        // Deleted and recreated under the same name: the new object has no status yet.
        let other_uid = Some("uid-2".to_string());
        assert!(needs_write(
            Some(&written),
            other_uid,
            &class(Reason::Accepted),
            same
        ));
        let changed = |_: &Value| json!({"parents": []});
        assert!(needs_write(
            Some(&written),
            uid(),
            &class(Reason::Pending),
            changed
        ));
    }

    #[test]
    fn a_stale_watch_cache_is_not_trusted_to_skip_a_write() {
        let programmed = json!({"conditions": [{"type": "Programmed", "status": "True"}]});
        let pending = json!({"conditions": [{"type": "Programmed", "status": "False"}]});
        // We wrote Pending; the cache still shows the Programmed from before that write, and
        // Programmed is what we want again: the object really says Pending, so read it.
        assert_eq!(
            next_step(&programmed, true, Some(&pending), &programmed),
            Step::ReadFresh
        );
        // Read fresh from the API server: it is the truth.
        assert_eq!(
            next_step(&programmed, false, Some(&pending), &programmed),
            Step::Skip
        );
        // The cache shows our last write: nothing to do.
        assert_eq!(
            next_step(&programmed, true, Some(&programmed), &programmed),
            Step::Skip
        );
        // Never written by us (e.g. after a restart): the cache, freshly listed, decides.
        assert_eq!(next_step(&programmed, true, None, &programmed), Step::Skip);
        assert_eq!(next_step(&pending, true, None, &programmed), Step::Write);
    }
}
