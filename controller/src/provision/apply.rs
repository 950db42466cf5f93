//! Applies rendered data-plane objects with server-side apply (field manager `pylon`) and
//! deletes them when their Gateway goes away (owner references cover the controller being down).
//! Optional objects (config CA ConfigMap, HorizontalPodAutoscaler, PodDisruptionBudget) are
//! deleted when a render no longer has them, e.g. when `autoscaling` is removed from the
//! parameters.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::ObjectKey;
use crate::snapshot::Snapshot;
use crate::translate::output::Translation;

use super::render::{DataplaneObjects, render};

/// Field manager of every apply.
pub const FIELD_MANAGER: &str = "pylon";
/// Field manager that keeps `spec.replicas` of a Deployment when `pylon` stops setting it
/// (autoscaling turned on): without a co-owner, server-side apply would remove the field and
/// the Deployment would drop to 1 replica until the HorizontalPodAutoscaler reacts.
pub const REPLICAS_HANDOVER_MANAGER: &str = "pylon-replicas-handover";

/// The provisioner; remembers what it applied to skip no-op applies.
pub struct Provisioner {
    client: kube::Client,
    applied: BTreeMap<ObjectKey, DataplaneObjects>,
}

/// The Gateway with the listeners of the ListenerSets it admits appended: the data-plane
/// Service must expose their ports too.
fn with_listener_sets(
    s: &Snapshot,
    gw: &crate::model::gateway::Gateway,
) -> crate::model::gateway::Gateway {
    let (admitted, _) = crate::translate::listener_set::for_gateway(s, gw);
    let mut gw = gw.clone();
    gw.spec.listeners.extend(
        admitted
            .iter()
            .flat_map(|set| set.spec.listeners.iter().cloned()),
    );
    gw
}

impl Provisioner {
    /// Creates a provisioner.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            applied: BTreeMap::new(),
        }
    }

    /// Makes the cluster match the Gateways of this translation; `false` if something failed
    /// (the caller retries).
    pub async fn sync(&mut self, s: &Snapshot, t: &Translation) -> bool {
        let mut ok = true;
        for key in t.gateways.keys() {
            let Some(gw) = s.gateways.get(key) else {
                continue;
            };
            let params = t.parameters.get(key).cloned().unwrap_or_default();
            let objects = render(&with_listener_sets(s, gw), &s.options, &params);
            if self.applied.get(key) == Some(&objects) {
                continue;
            }
            match self.apply(key, &objects).await {
                Ok(()) => {
                    crate::metrics::PROVISION_APPLIES
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.applied.insert(key.clone(), objects);
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!(gateway = %key, error = %e, "provisioning failed; will retry")
                }
            }
        }
        let gone: Vec<ObjectKey> = self
            .applied
            .keys()
            .filter(|k| !t.gateways.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Err(e) = self.delete(&key).await {
                ok = false;
                tracing::warn!(gateway = %key, error = %e, "deleting data plane failed");
            } else {
                self.applied.remove(&key);
            }
        }
        ok
    }

    async fn apply(&self, key: &ObjectKey, o: &DataplaneObjects) -> Result<(), kube::Error> {
        let name = crate::naming::dataplane_name(&key.name);
        let ns = &key.namespace;
        self.apply_one(ns, &name, &o.service_account).await?;
        // The bundle exists before Pods that mount it.
        self.apply_or_delete(ns, &name, o.config_ca.as_ref())
            .await?;
        self.apply_one(ns, &name, &o.service).await?;
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), ns);
        let autoscaled = o
            .deployment
            .spec
            .as_ref()
            .is_some_and(|s| s.replicas.is_none());
        if autoscaled {
            if let Some(current) = deployments.get_opt(&name).await? {
                let handover = replicas_handover(&current);
                let pp = PatchParams::apply(REPLICAS_HANDOVER_MANAGER);
                deployments
                    .patch(&name, &pp, &Patch::Apply(&handover))
                    .await?;
            }
        } else {
            // Autoscaling off: the autoscaler goes first, or it could resize the Deployment
            // after `pylon` set its replicas.
            self.apply_or_delete::<HorizontalPodAutoscaler>(ns, &name, None)
                .await?;
        }
        self.apply_one(ns, &name, &o.deployment).await?;
        self.apply_or_delete(ns, &name, o.autoscaler.as_ref())
            .await?;
        self.apply_or_delete(ns, &name, o.disruption_budget.as_ref())
            .await?;
        tracing::info!(gateway = %key, "data plane applied");
        Ok(())
    }

    async fn apply_one<K>(&self, ns: &str, name: &str, object: &K) -> Result<(), kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Serialize,
        K::DynamicType: Default,
    {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Api::<K>::namespaced(self.client.clone(), ns)
            .patch(name, &pp, &Patch::Apply(object))
            .await
            .map(|_| ())
    }

    /// Applies `object`, or deletes the object of that kind and name when it is `None`.
    async fn apply_or_delete<K>(
        &self,
        ns: &str,
        name: &str,
        object: Option<&K>,
    ) -> Result<(), kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Serialize,
        K::DynamicType: Default,
    {
        match object {
            Some(o) => self.apply_one(ns, name, o).await,
            None => ignore_missing(
                Api::<K>::namespaced(self.client.clone(), ns)
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(|_| ()),
            ),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), kube::Error> {
        let name = crate::naming::dataplane_name(&key.name);
        let ns = &key.namespace;
        let dp = DeleteParams::background();
        self.apply_or_delete::<HorizontalPodAutoscaler>(ns, &name, None)
            .await?;
        self.apply_or_delete::<PodDisruptionBudget>(ns, &name, None)
            .await?;
        self.apply_or_delete::<ConfigMap>(ns, &name, None).await?;
        ignore_missing(
            Api::<Deployment>::namespaced(self.client.clone(), ns)
                .delete(&name, &dp)
                .await
                .map(|_| ()),
        )?;
        ignore_missing(
            Api::<Service>::namespaced(self.client.clone(), ns)
                .delete(&name, &dp)
                .await
                .map(|_| ()),
        )?;
        ignore_missing(
            Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
                .delete(&name, &dp)
                .await
                .map(|_| ()),
        )?;
        tracing::info!(gateway = %key, "data plane deleted");
        Ok(())
    }
}

#[cfg(test)]
mod listener_set_tests {
    use super::*;
    use crate::snapshot::Options;

    #[test]
    fn the_service_exposes_the_ports_of_admitted_listener_sets() {
        let s = Snapshot::from_yaml(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: pylon
  allowedListeners: {namespaces: {from: Same}}
  listeners: [{name: web, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: extra}
spec:
  parentRef: {name: gw}
  listeners: [{name: alt, port: 8081, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: refused, namespace: elsewhere}
spec:
  parentRef: {name: gw, namespace: default}
  listeners: [{name: alt, port: 9999, protocol: HTTP}]
",
            Options::default(),
        )
        .unwrap();
        let gw = &s.gateways[&ObjectKey::new("default", "gw")];
        let objects = render(&with_listener_sets(&s, gw), &s.options, &Default::default());
        let ports: Vec<i32> = objects
            .service
            .spec
            .unwrap()
            .ports
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, vec![80, 8081]);
    }
}

/// A 404 on delete means the object is already gone.
fn ignore_missing(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// The apply that keeps a Deployment's current replica count owned (by
/// [`REPLICAS_HANDOVER_MANAGER`]) while `pylon` stops setting it: Kubernetes' documented way to
/// hand `spec.replicas` to a HorizontalPodAutoscaler without a dip to the default of 1.
pub fn replicas_handover(current: &Deployment) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": current.metadata.name,
            "namespace": current.metadata.namespace,
        },
        "spec": {
            "replicas": current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handover_keeps_the_current_replica_count_and_nothing_else() {
        let mut d = Deployment::default();
        d.metadata.name = Some("pylon-gw".into());
        d.metadata.namespace = Some("apps".into());
        d.spec = Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            replicas: Some(4),
            ..Default::default()
        });
        let h = replicas_handover(&d);
        assert_eq!(h["spec"], serde_json::json!({"replicas": 4}));
        assert_eq!(h["metadata"]["name"], "pylon-gw");
    }
}
