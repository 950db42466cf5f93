//! BackendTLSPolicy: which policy applies to a Service port, what TLS settings it yields for
//! the data plane, and the policy's status per ancestor Gateway.

use std::collections::{BTreeMap, BTreeSet};

use pylon_config as dp;

use crate::model::ObjectKey;
use crate::model::policy::BackendTlsPolicy;
use crate::model::route::ParentRef;
use crate::snapshot::Snapshot;

use super::output::{Condition, RouteParentStatus};
use crate::translate::reason::{ConditionType, Reason};

/// Why a policy cannot be applied; each variant carries the reasons it becomes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// A CA reference is not a core ConfigMap.
    #[error("caCertificateRef {0}: only core ConfigMaps are supported")]
    InvalidKind(String),
    /// A CA ConfigMap is missing or has no valid `ca.crt`.
    #[error("caCertificateRef {0}: {1}")]
    InvalidCaRef(String, String),
    /// Valid API, but not something Pylon supports.
    #[error("{0}")]
    Unsupported(String),
}

impl PolicyError {
    /// (Accepted reason, ResolvedRefs reason if refs are the problem).
    fn reasons(&self) -> (Reason, Option<Reason>) {
        match self {
            Self::InvalidKind(_) => (Reason::NoValidCACertificate, Some(Reason::InvalidKind)),
            Self::InvalidCaRef(..) => (
                Reason::NoValidCACertificate,
                Some(Reason::InvalidCACertificateRef),
            ),
            Self::Unsupported(_) => (Reason::Invalid, None),
        }
    }
}

/// The policies targeting one Service port, as conflict resolution decides between them.
#[derive(Debug, Default, PartialEq)]
pub struct Choice<'a> {
    /// The policy that applies: one naming the port beats one for the whole Service; among
    /// equals the oldest wins (then the name), as GEP-713's conflict rules say.
    pub winner: Option<&'a BackendTlsPolicy>,
    /// Policies as specific as the winner that lost to it: they get Accepted=False, reason
    /// Conflicted. A whole-Service policy that a port-specific one overrides is not in
    /// conflict (it may still apply to the Service's other ports).
    pub conflicted: Vec<&'a BackendTlsPolicy>,
}

/// Which policy applies to a Service port and which ones conflict with it.
pub fn policy_for<'a>(
    s: &'a Snapshot,
    namespace: &str,
    service: &str,
    port_name: &str,
) -> Choice<'a> {
    let mut candidates: Vec<(&BackendTlsPolicy, bool)> = s
        .backend_tls_policies
        .values()
        .filter(|p| p.meta.namespace == namespace)
        .filter_map(|p| {
            let specific = p.spec.target_refs.iter().find_map(|t| {
                let service_match = t.group.is_empty() && t.kind == "Service" && t.name == service;
                match (&t.section_name, service_match) {
                    (_, false) => None,
                    (Some(section), true) if section == port_name => Some(true),
                    (Some(_), true) => None,
                    (None, true) => Some(false),
                }
            })?;
            Some((&**p, specific))
        })
        .collect();
    candidates.sort_by(|(a, a_specific), (b, b_specific)| {
        b_specific
            .cmp(a_specific)
            .then_with(|| a.meta.creation_timestamp.cmp(&b.meta.creation_timestamp))
            .then_with(|| a.meta.name.cmp(&b.meta.name))
    });
    let mut candidates = candidates.into_iter();
    let Some((winner, winner_specific)) = candidates.next() else {
        return Choice::default();
    };
    Choice {
        winner: Some(winner),
        conflicted: candidates
            .take_while(|(_, specific)| *specific == winner_specific)
            .map(|(p, _)| p)
            .collect(),
    }
}

/// The data plane's backend TLS settings for a policy.
pub fn evaluate(s: &Snapshot, p: &BackendTlsPolicy) -> Result<dp::BackendTls, PolicyError> {
    let v = &p.spec.validation;
    if v.ca_certificate_refs.is_empty() {
        return Err(PolicyError::Unsupported(
            match &v.well_known_ca_certificates {
                Some(w) => {
                    format!("wellKnownCACertificates {w:?} is not supported; use caCertificateRefs")
                }
                None => "validation needs caCertificateRefs".into(),
            },
        ));
    }
    let mut bundle = String::new();
    for r in &v.ca_certificate_refs {
        let shown = format!("{}/{}", p.meta.namespace, r.name);
        if !r.group.is_empty() || r.kind != "ConfigMap" {
            return Err(PolicyError::InvalidKind(format!(
                "{}/{} {shown}",
                r.group, r.kind
            )));
        }
        let key = ObjectKey::new(p.meta.namespace.clone(), r.name.clone());
        let ca = super::ca::config_map_bundle(s, &key)
            .map_err(|e| PolicyError::InvalidCaRef(shown.clone(), e))?;
        bundle.push_str(ca.trim_end());
        bundle.push('\n');
    }
    let subject_alt_names = v
        .subject_alt_names
        .iter()
        .map(|san| match (san.kind.as_str(), &san.hostname, &san.uri) {
            ("Hostname", Some(h), _) => Ok(dp::SubjectAltName::Hostname { value: h.clone() }),
            ("URI", _, Some(u)) => Ok(dp::SubjectAltName::Uri { value: u.clone() }),
            (kind, ..) => Err(PolicyError::Unsupported(format!(
                "subjectAltName {kind:?} lacks its value"
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(dp::BackendTls {
        ca_pem: bundle,
        hostname: v.hostname.clone(),
        subject_alt_names,
        client_cert_pem: None,
        client_key_pem: None,
    })
}

/// Where each policy is in use: the Gateways whose routes reach a Service port it applies to,
/// and the Gateways where it lost a conflict (with the policy that won).
#[derive(Debug, Default)]
pub struct Uses {
    applied: BTreeMap<ObjectKey, BTreeSet<ObjectKey>>,
    conflicted: BTreeMap<ObjectKey, BTreeMap<ObjectKey, Option<ObjectKey>>>,
}

impl Uses {
    /// `policy` applies to a backend of Gateway `gateway`.
    pub fn applied(&mut self, policy: &ObjectKey, gateway: &ObjectKey) {
        self.applied
            .entry(policy.clone())
            .or_default()
            .insert(gateway.clone());
    }

    /// `policy` lost to `winner` on a backend of Gateway `gateway`.
    pub fn conflicted(
        &mut self,
        policy: &ObjectKey,
        gateway: &ObjectKey,
        winner: Option<&ObjectKey>,
    ) {
        self.conflicted
            .entry(policy.clone())
            .or_default()
            .insert(gateway.clone(), winner.cloned());
    }
}

/// Status of every policy in use: one ancestor entry per Gateway whose routes use a targeted
/// Service port. A policy that applies nowhere on a Gateway because an older one targets the
/// same port gets Accepted=False, reason Conflicted, there.
pub fn statuses(s: &Snapshot, uses: &Uses) -> BTreeMap<ObjectKey, super::output::ParentStatuses> {
    let mut out = BTreeMap::new();
    for (key, p) in &s.backend_tls_policies {
        let g = p.meta.generation;
        let conditions = match evaluate(s, p) {
            Ok(_) => vec![
                Condition::new(
                    ConditionType::Accepted,
                    true,
                    Reason::Accepted,
                    "Policy is applied",
                    g,
                ),
                resolved_refs(g),
            ],
            Err(e) => {
                let (accepted, resolved) = e.reasons();
                vec![
                    Condition::new(ConditionType::Accepted, false, accepted, e.to_string(), g),
                    match resolved {
                        Some(r) => {
                            Condition::new(ConditionType::ResolvedRefs, false, r, e.to_string(), g)
                        }
                        None => resolved_refs(g),
                    },
                ]
            }
        };
        let applied = uses.applied.get(key);
        let mut ancestors: BTreeMap<&ObjectKey, Vec<Condition>> = applied
            .into_iter()
            .flatten()
            .map(|gw| (gw, conditions.clone()))
            .collect();
        for (gw, winner) in uses.conflicted.get(key).into_iter().flatten() {
            if applied.is_some_and(|a| a.contains(gw)) {
                continue;
            }
            let by = winner
                .as_ref()
                .map_or_else(|| "another policy".to_string(), |w| format!("{w}"));
            let mut c = conditions.clone();
            c[0] = Condition::new(
                ConditionType::Accepted,
                false,
                Reason::Conflicted,
                format!(
                    "{by} targets the same Service port and takes precedence (created earlier, or at the same time with a name sorting first)"
                ),
                g,
            );
            ancestors.insert(gw, c);
        }
        let ancestors = ancestors
            .into_iter()
            .map(|(gw, conditions)| RouteParentStatus {
                parent_ref: ParentRef {
                    group: crate::model::GATEWAY_GROUP.into(),
                    kind: "Gateway".into(),
                    namespace: Some(gw.namespace.clone()),
                    name: gw.name.clone(),
                    section_name: None,
                    port: None,
                },
                conditions,
            })
            .collect();
        out.insert(key.clone(), std::sync::Arc::new(ancestors));
    }
    out
}

fn resolved_refs(generation: i64) -> Condition {
    Condition::new(
        ConditionType::ResolvedRefs,
        true,
        Reason::ResolvedRefs,
        "All references resolved",
        generation,
    )
}
