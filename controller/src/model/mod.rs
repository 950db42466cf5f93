//! Pylon's own model of the Kubernetes objects the controller reads.
//!
//! The generated `gateway-api` types are converted once, at the edge ([`convert`]), into these
//! types with the CRD defaults applied, so translation never has to ask "was this field set?".
//! HTTPRoute and GRPCRoute share one generic [`route::Route`] shape; only their rules differ.

pub mod api_enum;
pub mod convert;
pub mod core;
pub mod gateway;
pub mod params;
pub mod policy;
pub mod route;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API group of Gateway API objects.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Namespace and name of a namespaced object; orders by namespace, then name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// Serialized as "namespace/name" so it can key maps in JSON and YAML.
impl Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The metadata translation needs from any object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation` (0 when the API server did not set it).
    pub generation: i64,
    /// `metadata.uid`, used for owner references.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` in RFC 3339 (the epoch when unset, e.g. in tests).
    pub creation_timestamp: String,
}

impl Meta {
    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.namespace.clone(), self.name.clone())
    }
}

/// A Kubernetes label selector (matchLabels and matchExpressions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: String,
    /// Values for In and NotIn.
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy this selector. An unknown operator matches nothing, so a typo
    /// never widens who may attach.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}
