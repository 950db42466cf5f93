//! CA bundles from ConfigMaps (`ca.crt`): the trust anchors of BackendTLSPolicy validation and
//! of a Gateway's frontend client-certificate validation (`spec.tls.frontend`).

use pylon_config as dp;

use crate::model::ObjectKey;
use crate::model::gateway::{FrontendTls, Gateway, ObjectReference};
use crate::snapshot::Snapshot;

use super::refs::{Reference, check_pem, permitted};
use crate::translate::reason::Reason;

/// The PEM bundle in a ConfigMap's `ca.crt`, checked to hold certificates; `Err` says why not.
pub fn config_map_bundle(s: &Snapshot, key: &ObjectKey) -> Result<String, String> {
    let cm = s
        .config_maps
        .get(key)
        .ok_or_else(|| "ConfigMap not found".to_string())?;
    let ca = cm
        .ca_crt
        .as_ref()
        .ok_or_else(|| "no ca.crt key".to_string())?;
    check_pem(ca, &["CERTIFICATE"]).map_err(|e| format!("ca.crt: {e}"))?;
    Ok(ca.clone())
}

/// Why a frontend caCertificateRef does not resolve; each variant is a listener reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaRefError {
    /// Not a core ConfigMap.
    #[error("caCertificateRef {0}: only core ConfigMaps are supported")]
    InvalidKind(String),
    /// Cross-namespace without a ReferenceGrant.
    #[error("caCertificateRef {0}: not permitted by any ReferenceGrant")]
    NotPermitted(String),
    /// Missing, or no usable `ca.crt`.
    #[error("caCertificateRef {0}: {1}")]
    Invalid(String, String),
}

impl CaRefError {
    /// The listener ResolvedRefs reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidKind(_) => Reason::InvalidCACertificateKind,
            Self::NotPermitted(_) => Reason::RefNotPermitted,
            Self::Invalid(..) => Reason::InvalidCACertificateRef,
        }
    }
}

/// Resolves one frontend caCertificateRef of a Gateway.
fn resolve(s: &Snapshot, gw: &Gateway, r: &ObjectReference) -> Result<String, CaRefError> {
    let ns = r.namespace.as_deref().unwrap_or(&gw.meta.namespace);
    let key = ObjectKey::new(ns, r.name.clone());
    let shown = key.to_string();
    if !r.group.is_empty() || r.kind != "ConfigMap" {
        return Err(CaRefError::InvalidKind(format!(
            "{}/{} {shown}",
            r.group, r.kind
        )));
    }
    let reference = Reference {
        from_group: crate::model::GATEWAY_GROUP,
        from_kind: "Gateway",
        from_namespace: &gw.meta.namespace,
        to_group: "",
        to_kind: "ConfigMap",
        to_namespace: ns,
        to_name: &r.name,
    };
    if !permitted(s, &reference) {
        return Err(CaRefError::NotPermitted(shown));
    }
    config_map_bundle(s, &key).map_err(|e| CaRefError::Invalid(shown, e))
}

/// The client validation of an HTTPS listener port: `Ok(None)` when none is configured;
/// otherwise the bundle of the refs that resolve, and the first ref that does not.
pub struct PortValidation {
    /// What the data plane enforces; `None` if no ref resolved.
    pub validation: Option<dp::ClientValidation>,
    /// The first unresolved reference.
    pub error: Option<CaRefError>,
}

/// Client validation for an HTTPS listener on `port`; `None` when the Gateway asks for none.
pub fn frontend_validation(
    s: &Snapshot,
    gw: &Gateway,
    frontend: &FrontendTls,
    port: i32,
) -> Option<PortValidation> {
    let v = frontend.for_port(port).validation.as_ref()?;
    let mut bundle = String::new();
    let mut error = None;
    for r in &v.ca_certificate_refs {
        match resolve(s, gw, r) {
            Ok(pem) => {
                bundle.push_str(pem.trim_end());
                bundle.push('\n');
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    let mode = if v.mode == "AllowInsecureFallback" {
        dp::ClientValidationMode::AllowInsecureFallback
    } else {
        dp::ClientValidationMode::AllowValidOnly
    };
    Some(PortValidation {
        validation: (!bundle.is_empty()).then_some(dp::ClientValidation {
            ca_pem: bundle,
            mode,
        }),
        error,
    })
}
