//! Resolves `parametersRef`s of GatewayClasses and Gateways to [`GatewayParametersSpec`]s.

use crate::model::ObjectKey;
use crate::model::gateway::{Gateway, GatewayClass, ParametersRef};
use crate::model::params::{GatewayParametersSpec, PYLON_GROUP};
use crate::snapshot::Snapshot;

/// Why a parametersRef is unusable (the condition reason is InvalidParameters).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    /// Not a pylon.dev GatewayParameters.
    #[error("parametersRef {0}: only pylon.dev/GatewayParameters is supported")]
    UnsupportedKind(String),
    /// A GatewayClass reference must name a namespace.
    #[error("parametersRef {0}: a GatewayClass must name the namespace of its GatewayParameters")]
    NoNamespace(String),
    /// No such object.
    #[error("parametersRef {0}: GatewayParameters not found")]
    NotFound(String),
    /// The object's values are invalid.
    #[error("parametersRef {0}: {1}")]
    Invalid(String, String),
    /// The Gateway's own parameters over its class's are invalid together.
    #[error("effective parameters (Gateway's over GatewayClass's): {0}")]
    Effective(String),
}

fn resolve(
    s: &Snapshot,
    r: &ParametersRef,
    namespace: Option<&str>,
) -> Result<GatewayParametersSpec, ParamsError> {
    let shown = format!("{}/{} {}", r.group, r.kind, r.name);
    if r.group != PYLON_GROUP || r.kind != "GatewayParameters" {
        return Err(ParamsError::UnsupportedKind(shown));
    }
    let ns = namespace.ok_or_else(|| ParamsError::NoNamespace(shown.clone()))?;
    let p = s
        .parameters
        .get(&ObjectKey::new(ns, r.name.clone()))
        .ok_or_else(|| ParamsError::NotFound(format!("{ns}/{}", r.name)))?;
    p.validate()
        .map_err(|e| ParamsError::Invalid(format!("{ns}/{}", r.name), e))?;
    Ok((**p).clone())
}

/// A class's parameters (defaults when it has no reference).
pub fn class_params(
    s: &Snapshot,
    class: &GatewayClass,
) -> Result<GatewayParametersSpec, ParamsError> {
    match &class.parameters_ref {
        None => Ok(GatewayParametersSpec::default()),
        Some(r) => resolve(s, r, r.namespace.as_deref()),
    }
}

/// A Gateway's effective parameters: its own over its class's. An unusable class reference is
/// reported on the class; the Gateway then uses defaults for the class part.
pub fn gateway_params(s: &Snapshot, gw: &Gateway) -> Result<GatewayParametersSpec, ParamsError> {
    let class = s
        .gateway_classes
        .get(&gw.spec.gateway_class_name)
        .and_then(|c| class_params(s, c).ok())
        .unwrap_or_default();
    let effective = match &gw.spec.infrastructure.parameters_ref {
        None => class,
        Some(r) => class.overlaid(&resolve(s, r, Some(&gw.meta.namespace))?),
    };
    effective
        .validate_effective()
        .map_err(ParamsError::Effective)?;
    Ok(effective)
}
