//! What data planes run, recorded on their Pods so every controller replica sees it.
//!
//! A data plane acks to whichever replica its stream reached; that replica writes the ack onto
//! the data plane's Pod as annotations ([`PodReporter`]). Every replica watches data-plane Pods
//! ([`PodWatch`]) and the leader computes honest status from their annotations and readiness
//! ([`served`]), so a newly elected leader recovers the state from the API server.
//!
//! Annotations (`pylon.dev/…`): `config-version` and `config-accepted` are the last ack;
//! `config-error` its error on rejection; `config-applied` the last version the data plane
//! accepted, which it keeps serving after rejecting a newer one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::config_hub::{ConfigHub, PodAck};
use crate::model::ObjectKey;
use crate::provision::render::GATEWAY_NAME_LABEL;
use crate::serving_status::{Rejection, Served, Serving};
use crate::translate::output::Translation;

/// The last version a data plane acked.
pub const VERSION: &str = "pylon.dev/config-version";
/// Whether it applied that version: "true" or "false".
pub const ACCEPTED: &str = "pylon.dev/config-accepted";
/// Why it rejected that version (absent when accepted).
pub const ERROR: &str = "pylon.dev/config-error";
/// The last version it applied: what it serves.
pub const APPLIED: &str = "pylon.dev/config-applied";
/// Label selecting the data-plane Pods Pylon provisions.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=pylon";
/// Longest error message kept in [`ERROR`] (bytes, cut at a character boundary).
pub const MAX_ERROR: usize = 1024;

/// Why an ack could not be recorded on its Pod.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such Pod in the Gateway's namespace.
    #[error("no Pod {namespace}/{pod} (the ack's pod must name the data plane's own Pod)")]
    NoPod {
        /// Namespace looked in.
        namespace: String,
        /// Pod named in the ack.
        pod: String,
    },
    /// The Pod is not a data plane of that Gateway.
    #[error(
        "Pod {namespace}/{pod} is not a data plane of Gateway {gateway} (label {GATEWAY_NAME_LABEL}={gateway_name} missing)"
    )]
    NotGatewayPod {
        /// Namespace of the Pod.
        namespace: String,
        /// Pod named in the ack.
        pod: String,
        /// The Gateway acked for.
        gateway: ObjectKey,
        /// Its name (the label value required).
        gateway_name: String,
    },
    /// The API server refused or failed.
    #[error("recording the ack on Pod {namespace}/{pod}: {source}")]
    Api {
        /// Namespace of the Pod.
        namespace: String,
        /// Pod named in the ack.
        pod: String,
        /// The error.
        source: kube::Error,
    },
}

impl ReportError {
    /// The HTTP status to answer the data plane with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            ReportError::NoPod { .. } => StatusCode::NOT_FOUND,
            ReportError::NotGatewayPod { .. } => StatusCode::FORBIDDEN,
            ReportError::Api { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary, marked when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The merge patch recording `ack`: the error is removed on acceptance; `applied` only moves
/// on acceptance.
pub fn ack_patch(ack: &PodAck) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(VERSION.into(), ack.version.clone().into());
    annotations.insert(ACCEPTED.into(), ack.accepted.to_string().into());
    if ack.accepted {
        annotations.insert(APPLIED.into(), ack.version.clone().into());
        annotations.insert(ERROR.into(), serde_json::Value::Null);
    } else {
        let error = ack.error.as_deref().unwrap_or("no reason given");
        annotations.insert(ERROR.into(), truncate(error, MAX_ERROR).into());
    }
    serde_json::json!({ "metadata": { "annotations": annotations } })
}

/// Writes acks onto data-plane Pods.
#[derive(Clone)]
pub struct PodReporter {
    client: kube::Client,
}

impl PodReporter {
    /// A reporter using `client`.
    pub fn new(client: kube::Client) -> Self {
        PodReporter { client }
    }

    /// Records `ack` on Pod `pod` in the Gateway's namespace, after checking that the Pod is a
    /// data plane of that Gateway. Transient API failures are retried a few times (the data
    /// plane does not resend acks).
    pub async fn report(
        &self,
        gateway: &ObjectKey,
        pod: &str,
        ack: &PodAck,
    ) -> Result<(), ReportError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &gateway.namespace);
        let api_err = |source| ReportError::Api {
            namespace: gateway.namespace.clone(),
            pod: pod.to_string(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.try_report(&api, gateway, pod, ack).await;
            match r {
                Err(ReportError::Api { source, .. }) if attempt < 3 => {
                    tracing::debug!(error = %source, attempt, "recording ack failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(ReportError::Api { source, .. }) => return Err(api_err(source)),
                other => return other,
            }
        }
    }

    async fn try_report(
        &self,
        api: &Api<Pod>,
        gateway: &ObjectKey,
        pod: &str,
        ack: &PodAck,
    ) -> Result<(), ReportError> {
        let api_err = |source| ReportError::Api {
            namespace: gateway.namespace.clone(),
            pod: pod.to_string(),
            source,
        };
        let Some(p) = api.get_opt(pod).await.map_err(api_err)? else {
            return Err(ReportError::NoPod {
                namespace: gateway.namespace.clone(),
                pod: pod.to_string(),
            });
        };
        let label = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(GATEWAY_NAME_LABEL));
        if label != Some(&gateway.name) {
            return Err(ReportError::NotGatewayPod {
                namespace: gateway.namespace.clone(),
                pod: pod.to_string(),
                gateway: gateway.clone(),
                gateway_name: gateway.name.clone(),
            });
        }
        api.patch(pod, &PatchParams::default(), &Patch::Merge(ack_patch(ack)))
            .await
            .map_err(api_err)?;
        Ok(())
    }
}

/// A watch of every data-plane Pod.
#[derive(Clone)]
pub struct PodWatch {
    store: Store<Pod>,
    synced: Arc<AtomicBool>,
}

impl PodWatch {
    /// Starts watching Pods labelled [`SELECTOR`]; every change wakes the waiters on
    /// `hub.ack_notify` (the status loop).
    pub fn start(client: &kube::Client, hub: Arc<ConfigHub>) -> Self {
        let api: Api<Pod> = Api::all(client.clone());
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default().labels(SELECTOR)).default_backoff(),
        );
        let synced = Arc::new(AtomicBool::new(false));
        let flag = synced.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::InitDone) => {
                        flag.store(true, Ordering::SeqCst);
                        hub.ack_notify.notify_waiters();
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Ok(_) => hub.ack_notify.notify_waiters(),
                    Err(e) => tracing::warn!(kind = "Pod", error = %e, "watch failed; retrying"),
                }
            }
        });
        PodWatch { store, synced }
    }

    /// Whether the initial list completed (before it, every Gateway would look unserved).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// The data-plane Pods.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }
}

/// Whether a Pod is Ready and not being deleted.
fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What each Gateway's data planes run, from their Pods' annotations and readiness, against
/// the configs `hub` publishes (see [`crate::serving_status`]).
pub fn served(hub: &ConfigHub, pods: &[Arc<Pod>], t: &Translation) -> Served {
    let mut by_gateway: BTreeMap<ObjectKey, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        let (Some(ns), Some(gw)) = (
            p.metadata.namespace.as_ref(),
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(GATEWAY_NAME_LABEL)),
        ) else {
            continue;
        };
        by_gateway
            .entry(ObjectKey::new(ns.clone(), gw.clone()))
            .or_default()
            .push(p);
    }
    hub.retain_pods(|key, pod| {
        by_gateway
            .get(key)
            .is_some_and(|ps| ps.iter().any(|p| p.metadata.name.as_deref() == Some(pod)))
    });
    t.gateways
        .keys()
        .map(|key| {
            let mut serving = Serving {
                current: hub.since(key),
                running: vec![],
                rejected: vec![],
            };
            for p in by_gateway.get(key).into_iter().flatten() {
                let name = p.metadata.name.clone().unwrap_or_default();
                let empty = BTreeMap::new();
                let a = p.metadata.annotations.as_ref().unwrap_or(&empty);
                if let Some(applied) = a.get(APPLIED)
                    && ready(p)
                {
                    serving
                        .running
                        .push(hub.running_number(key, &name, applied));
                }
                if let (Some(version), Some("false")) =
                    (a.get(VERSION), a.get(ACCEPTED).map(String::as_str))
                    && p.metadata.deletion_timestamp.is_none()
                {
                    serving.rejected.push(Rejection {
                        pod: name,
                        version: version.clone(),
                        error: a.get(ERROR).cloned().unwrap_or_default(),
                        number: hub.number(key, version),
                    });
                }
            }
            (key.clone(), serving)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Options, Snapshot};
    use crate::translate::output::Condition;

    /// A data-plane Pod of Gateway `gw` as the API server returns it.
    fn pod(name: &str, gw: &str, ready: bool, annotations: &[(&str, &str)]) -> Arc<Pod> {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {GATEWAY_NAME_LABEL: gw, "app.kubernetes.io/managed-by": "pylon"},
            },
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap();
        p.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Arc::new(p)
    }

    fn cond<'a>(cs: &'a [Condition], kind: &str) -> &'a Condition {
        cs.iter().find(|c| c.kind.as_str() == kind).unwrap()
    }

    fn status(t: &Translation, route: &str) -> String {
        let c = cond(
            &t.http_routes[&ObjectKey::new("default", route)][0].conditions,
            "Accepted",
        );
        format!("{}/{}: {}", c.status, c.reason, c.message)
    }

    fn programmed(t: &Translation) -> String {
        let c = cond(
            &t.gateways[&ObjectKey::new("default", "gw")].conditions,
            "Programmed",
        );
        format!("{}/{}", c.status, c.reason)
    }

    #[test]
    fn overlay_from_pod_annotations_and_readiness() {
        let mut s = Snapshot::from_yaml(
            crate::test_fixtures::ONE_GATEWAY_TWO_ROUTES,
            Options::default(),
        )
        .unwrap();
        let gw = ObjectKey::new("default", "gw");
        let hub = ConfigHub::default();
        let t1 = crate::translate::translate(&s);
        let v1 = hub.publish(&gw, t1.configs[&gw].clone());
        let honest = |t: &Translation, pods: &[Arc<Pod>]| {
            crate::serving_status::apply(t, &served(&hub, pods, t))
        };

        // No Pod, a Pod without annotations, a not-ready Pod that applied v1, a ready Pod of
        // another Gateway: nothing is served.
        for pods in [
            vec![],
            vec![pod("p", "gw", true, &[])],
            vec![pod("p", "gw", false, &[(APPLIED, &v1)])],
            vec![pod("p", "other", true, &[(APPLIED, &v1)])],
        ] {
            let h = honest(&t1, &pods);
            assert_eq!(programmed(&h), "False/Pending", "{pods:?}");
            let a = status(&h, "a");
            assert!(a.starts_with("Unknown/Pending"), "{a}");
            assert!(a.ends_with("apply the current config"), "{a}");
        }

        // A ready Pod applied v1: all served.
        let on_v1 = pod(
            "p",
            "gw",
            true,
            &[(VERSION, &v1), (ACCEPTED, "true"), (APPLIED, &v1)],
        );
        let h = honest(&t1, std::slice::from_ref(&on_v1));
        assert_eq!(programmed(&h), "True/Programmed");
        assert!(status(&h, "a").starts_with("True/Accepted"));

        // Route b changes (v2); the Pod still runs v1: only b is pending.
        let b = ObjectKey::new("default", "b");
        std::sync::Arc::make_mut(s.http_routes.get_mut(&b).unwrap())
            .spec
            .hostnames = vec!["c.example.com".into()];
        let t2 = crate::translate::translate(&s);
        let v2 = hub.publish(&gw, t2.configs[&gw].clone());
        assert_ne!(v1, v2);
        let h = honest(&t2, std::slice::from_ref(&on_v1));
        assert_eq!(programmed(&h), "True/Programmed");
        assert!(status(&h, "a").starts_with("True/Accepted"));
        assert!(status(&h, "b").starts_with("Unknown/Pending"));

        // The Pod now runs a version this replica never published (another replica's, from a
        // burst it translated at other moments): still at least v1, so a stays served.
        let elsewhere = "0123456789abcdef.0123456789abcdef";
        let on_other = pod("p", "gw", true, &[(APPLIED, elsewhere)]);
        let h = honest(&t2, std::slice::from_ref(&on_other));
        assert!(status(&h, "a").starts_with("True/Accepted"));
        assert!(status(&h, "b").starts_with("Unknown/Pending"));
        // A Pod never seen on a known version is not taken to serve anything.
        let new_pod = pod("q", "gw", true, &[(APPLIED, elsewhere)]);
        let h = honest(&t2, std::slice::from_ref(&new_pod));
        assert!(status(&h, "a").starts_with("Unknown/Pending"));
        // Gone and forgotten: "p" listed again on the unknown version serves nothing.
        let h = honest(&t2, std::slice::from_ref(&on_other));
        assert!(status(&h, "a").starts_with("Unknown/Pending"));

        // The Pod rejected v2 (and keeps serving v1): b reports the Pod's error.
        let rejected = pod(
            "p",
            "gw",
            true,
            &[
                (VERSION, &v2),
                (ACCEPTED, "false"),
                (ERROR, "bad route"),
                (APPLIED, &v1),
            ],
        );
        let h = honest(&t2, &[rejected]);
        assert!(status(&h, "a").starts_with("True/Accepted"));
        let b_status = status(&h, "b");
        assert!(
            b_status.contains(&format!(
                "data plane p rejected config version {v2}: bad route"
            )),
            "{b_status}"
        );

        // Another Pod applied v2: everything served.
        let on_v2 = pod(
            "q",
            "gw",
            true,
            &[(VERSION, &v2), (ACCEPTED, "true"), (APPLIED, &v2)],
        );
        let h = honest(&t2, &[on_v1, on_v2]);
        assert!(status(&h, "b").starts_with("True/Accepted"));
    }

    #[test]
    fn ack_patches() {
        let accepted = ack_patch(&PodAck {
            version: "v".into(),
            accepted: true,
            error: None,
        });
        assert_eq!(
            accepted["metadata"]["annotations"],
            serde_json::json!({VERSION: "v", ACCEPTED: "true", APPLIED: "v", ERROR: null})
        );
        let long = "é".repeat(2000);
        let rejected = ack_patch(&PodAck {
            version: "w".into(),
            accepted: false,
            error: Some(long),
        });
        let a = &rejected["metadata"]["annotations"];
        assert_eq!(a[ACCEPTED], "false");
        assert!(
            a.get(APPLIED).is_none(),
            "a rejection keeps what is applied"
        );
        let e = a[ERROR].as_str().unwrap();
        assert!(e.len() <= MAX_ERROR && e.ends_with("..."), "{}", e.len());
        assert_eq!(truncate("short", MAX_ERROR), "short");
    }
}
