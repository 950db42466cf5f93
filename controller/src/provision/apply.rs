//! Applies rendered data-plane objects with server-side apply (field manager `pylon`) and
//! deletes them when their Gateway goes away (owner references cover the controller being down).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::model::ObjectKey;
use crate::snapshot::Snapshot;
use crate::translate::output::Translation;

use super::render::{DataplaneObjects, render};

/// Field manager of every apply.
pub const FIELD_MANAGER: &str = "pylon";

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
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let name = super::dataplane_name(&key.name);
        let ns = &key.namespace;
        Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .patch(&name, &pp, &Patch::Apply(&o.service_account))
            .await?;
        Api::<Service>::namespaced(self.client.clone(), ns)
            .patch(&name, &pp, &Patch::Apply(&o.service))
            .await?;
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .patch(&name, &pp, &Patch::Apply(&o.deployment))
            .await?;
        tracing::info!(gateway = %key, "data plane applied");
        Ok(())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), kube::Error> {
        let name = super::dataplane_name(&key.name);
        let ns = &key.namespace;
        let dp = DeleteParams::background();
        let ignore_missing = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        };
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
