//! `GatewayParameters` (pylon.dev/v1alpha1): Pylon's own CRD for data-plane infrastructure
//! settings, referenced by `GatewayClass.spec.parametersRef` (class defaults) and
//! `Gateway.spec.infrastructure.parametersRef` (per-Gateway overrides).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Plural resource name of [`GatewayParameters`].
pub const PARAMETERS_PLURAL: &str = "gatewayparameters";

/// API group of Pylon's CRDs.
pub const PYLON_GROUP: &str = "pylon.dev";

/// Settings for the data planes Pylon provisions. Every field is optional; a Gateway's
/// parameters override its class's field by field.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "pylon.dev",
    version = "v1alpha1",
    kind = "GatewayParameters",
    plural = "gatewayparameters",
    namespaced,
    doc = "Pylon data-plane settings, referenced by GatewayClass.spec.parametersRef and Gateway.spec.infrastructure.parametersRef"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParametersSpec {
    /// Data-plane replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Data-plane image (default: the controller's `--dataplane-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Type of the data-plane Service: ClusterIP, NodePort or LoadBalancer (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Extra labels on every provisioned object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every provisioned object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Container resource requests and limits (Kubernetes quantities, e.g. "100m", "128Mi").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// Requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

impl GatewayParametersSpec {
    /// These settings with `over`'s set fields taking precedence.
    pub fn overlaid(&self, over: &GatewayParametersSpec) -> GatewayParametersSpec {
        let mut labels = self.labels.clone();
        labels.extend(over.labels.clone());
        let mut annotations = self.annotations.clone();
        annotations.extend(over.annotations.clone());
        GatewayParametersSpec {
            replicas: over.replicas.or(self.replicas),
            image: over.image.clone().or_else(|| self.image.clone()),
            service_type: over
                .service_type
                .clone()
                .or_else(|| self.service_type.clone()),
            resources: over.resources.clone().or_else(|| self.resources.clone()),
            labels,
            annotations,
        }
    }

    /// Checks values the schema cannot; `Err` names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.service_type
            && !["ClusterIP", "NodePort", "LoadBalancer"].contains(&t.as_str())
        {
            return Err(format!(
                "serviceType {t:?} is not ClusterIP, NodePort or LoadBalancer"
            ));
        }
        if let Some(r) = self.replicas
            && r < 0
        {
            return Err(format!("replicas {r} is negative"));
        }
        Ok(())
    }
}
