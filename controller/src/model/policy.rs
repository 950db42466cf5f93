//! BackendTLSPolicy, with CRD defaults applied.

use serde::{Deserialize, Serialize};

use super::Meta;

/// A BackendTLSPolicy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendTlsPolicy {
    /// Metadata.
    pub meta: Meta,
    /// The spec.
    pub spec: BackendTlsPolicySpec,
}

/// `spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// What the policy applies to (Services, optionally one port by name).
    pub target_refs: Vec<PolicyTargetRef>,
    /// How to validate the backend's certificate.
    pub validation: BackendTlsValidation,
}

/// A local policy target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// API group ("" = core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Port name, if only one port is targeted.
    #[serde(default)]
    pub section_name: Option<String>,
}

/// `spec.validation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsValidation {
    /// CA bundles (ConfigMaps with `ca.crt`).
    #[serde(default)]
    pub ca_certificate_refs: Vec<LocalObjectRef>,
    /// "System" to trust the platform's CAs.
    #[serde(default)]
    pub well_known_ca_certificates: Option<String>,
    /// SNI and (without SANs) the name verified.
    pub hostname: String,
    /// Names to verify instead of `hostname`.
    #[serde(default)]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A local object reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalObjectRef {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A subject alternative name to verify.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectAltName {
    /// Hostname or URI.
    #[serde(rename = "type")]
    pub kind: String,
    /// For Hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// For URI.
    #[serde(default)]
    pub uri: Option<String>,
}
