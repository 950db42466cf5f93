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
    /// Data-plane replicas (default 1). Not allowed together with `autoscaling` in one object;
    /// when a class and a Gateway set one each, `autoscaling` wins.
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
    /// Scale the data plane with a HorizontalPodAutoscaler (autoscaling/v2) on CPU utilization
    /// instead of a fixed `replicas`; needs `resources.requests.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Protect the data plane with a PodDisruptionBudget (policy/v1): exactly one of
    /// `minAvailable` and `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<DisruptionBudget>,
}

/// HorizontalPodAutoscaler settings for the data-plane Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Fewest replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Most replicas; at least `minReplicas`.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilization to aim for, in percent of the CPU request (default 80).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub target_cpu_utilization_percentage: Option<i32>,
}

/// Default CPU utilization target of [`Autoscaling`] (the HorizontalPodAutoscaler's own).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// PodDisruptionBudget settings for the data-plane Pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Pods that must stay available during voluntary disruptions (drains): a count or a
    /// percentage such as "50%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent")]
    pub min_available: Option<IntOrPercent>,
    /// Pods that may be unavailable during voluntary disruptions: a count or a percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// A count or a percentage ("25%"), Kubernetes' IntOrString as PodDisruptionBudgets use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A count.
    Int(i32),
    /// A percentage, `<0-100>%`.
    Percent(String),
}

/// Schema of an [`IntOrPercent`]: Kubernetes' structural form of int-or-string.
fn int_or_percent(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-int-or-string": true })
}

impl IntOrPercent {
    fn validate(&self, field: &str) -> Result<(), String> {
        match self {
            IntOrPercent::Int(n) if *n < 0 => Err(format!("{field} {n} is negative")),
            IntOrPercent::Int(_) => Ok(()),
            IntOrPercent::Percent(p) => match p.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(n)) if n <= 100 => Ok(()),
                _ => Err(format!(
                    "{field} {p:?} is neither a count nor a percentage from 0% to 100%"
                )),
            },
        }
    }
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
            autoscaling: over
                .autoscaling
                .clone()
                .or_else(|| self.autoscaling.clone()),
            pod_disruption_budget: over
                .pod_disruption_budget
                .clone()
                .or_else(|| self.pod_disruption_budget.clone()),
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
        if let Some(a) = &self.autoscaling {
            if let Some(r) = self.replicas {
                return Err(format!(
                    "replicas ({r}) and autoscaling are mutually exclusive: the HorizontalPodAutoscaler sets the replica count"
                ));
            }
            let min = a.min_replicas.unwrap_or(1);
            if min < 1 {
                return Err(format!("autoscaling.minReplicas {min} is below 1"));
            }
            if a.max_replicas < min {
                return Err(format!(
                    "autoscaling.maxReplicas ({}) is below autoscaling.minReplicas ({min})",
                    a.max_replicas
                ));
            }
            if let Some(t) = a.target_cpu_utilization_percentage
                && t < 1
            {
                return Err(format!(
                    "autoscaling.targetCPUUtilizationPercentage {t} is below 1"
                ));
            }
        }
        if let Some(b) = &self.pod_disruption_budget {
            match (&b.min_available, &b.max_unavailable) {
                (Some(_), Some(_)) => {
                    return Err("podDisruptionBudget sets both minAvailable and maxUnavailable; set exactly one".into());
                }
                (None, None) => {
                    return Err("podDisruptionBudget sets neither minAvailable nor maxUnavailable; set exactly one".into());
                }
                (Some(v), None) => v.validate("podDisruptionBudget.minAvailable")?,
                (None, Some(v)) => v.validate("podDisruptionBudget.maxUnavailable")?,
            }
        }
        Ok(())
    }

    /// Checks the effective settings of a Gateway (its own over its class's), which no single
    /// object can: CPU-based autoscaling measures utilization against the CPU request, and
    /// without one the HorizontalPodAutoscaler never scales.
    pub fn validate_effective(&self) -> Result<(), String> {
        if self.autoscaling.is_some()
            && !self
                .resources
                .as_ref()
                .is_some_and(|r| r.requests.contains_key("cpu"))
        {
            return Err("autoscaling needs resources.requests.cpu: CPU utilization is measured against the request".into());
        }
        Ok(())
    }
}
