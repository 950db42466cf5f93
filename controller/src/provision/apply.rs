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
            let objects = render(gw, &s.options, &params);
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
