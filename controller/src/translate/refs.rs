//! Reference checks shared by Gateways and routes: ReferenceGrants, TLS Secrets, hostnames.

use pylon_config::host::host_matches;

use crate::model::ObjectKey;
use crate::model::gateway::SecretObjectReference;
use crate::snapshot::Snapshot;
use crate::translate::reason::Reason;

/// A resolved certificate: PEM chain and key, and the Secret it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// Source Secret (namespace/name).
    pub secret: String,
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
}

/// Who refers to what, for a ReferenceGrant check.
pub struct Reference<'a> {
    /// Referrer group.
    pub from_group: &'a str,
    /// Referrer kind.
    pub from_kind: &'a str,
    /// Referrer namespace.
    pub from_namespace: &'a str,
    /// Target group.
    pub to_group: &'a str,
    /// Target kind.
    pub to_kind: &'a str,
    /// Target namespace.
    pub to_namespace: &'a str,
    /// Target name.
    pub to_name: &'a str,
}

/// Whether the reference is allowed: same namespace, or a ReferenceGrant in the target's
/// namespace admits it.
pub fn permitted(s: &Snapshot, r: &Reference<'_>) -> bool {
    r.from_namespace == r.to_namespace
        || s.reference_grants.values().any(|g| {
            g.meta.namespace == r.to_namespace
                && g.from.iter().any(|f| {
                    f.group == r.from_group
                        && f.kind == r.from_kind
                        && f.namespace == r.from_namespace
                })
                && g.to.iter().any(|t| {
                    t.group == r.to_group
                        && t.kind == r.to_kind
                        && t.name.as_deref().is_none_or(|n| n == r.to_name)
                })
        })
}

/// Why a certificate reference does not resolve; each variant maps to a listener reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CertificateError {
    /// Not a core Secret.
    #[error("certificateRef {0}: only core Secrets are supported")]
    InvalidKind(String),
    /// Cross-namespace without a ReferenceGrant.
    #[error("certificateRef {0}: not permitted by any ReferenceGrant")]
    NotPermitted(String),
    /// The Secret does not exist.
    #[error("certificateRef {0}: Secret not found")]
    NotFound(String),
    /// The Secret has no usable certificate and key.
    #[error("certificateRef {0}: {1}")]
    Malformed(String, String),
}

impl CertificateError {
    /// The listener ResolvedRefs reason this error becomes.
    pub fn reason(&self) -> Reason {
        match self {
            Self::NotPermitted(_) => Reason::RefNotPermitted,
            _ => Reason::InvalidCertificateRef,
        }
    }
}

/// Resolves a certificate reference of a `from_kind` object (Gateway, ListenerSet) in
/// `from_namespace` to PEM material.
pub fn certificate(
    s: &Snapshot,
    from_kind: &str,
    from_namespace: &str,
    r: &SecretObjectReference,
) -> Result<Certificate, CertificateError> {
    let ns = r
        .namespace
        .clone()
        .unwrap_or_else(|| from_namespace.to_string());
    let key = ObjectKey::new(ns.clone(), r.name.clone());
    let shown = key.to_string();
    if !r.group.is_empty() || r.kind != "Secret" {
        return Err(CertificateError::InvalidKind(format!(
            "{}/{} {shown}",
            r.group, r.kind
        )));
    }
    let reference = Reference {
        from_group: crate::model::GATEWAY_GROUP,
        from_kind,
        from_namespace,
        to_group: "",
        to_kind: "Secret",
        to_namespace: &ns,
        to_name: &r.name,
    };
    if !permitted(s, &reference) {
        return Err(CertificateError::NotPermitted(shown));
    }
    let secret = s
        .secrets
        .get(&key)
        .ok_or_else(|| CertificateError::NotFound(shown.clone()))?;
    let (Some(cert), Some(key_pem)) = (&secret.tls_crt, &secret.tls_key) else {
        return Err(CertificateError::Malformed(
            shown,
            "missing tls.crt or tls.key".into(),
        ));
    };
    check_pem(cert, &["CERTIFICATE"])
        .map_err(|e| CertificateError::Malformed(shown.clone(), format!("tls.crt: {e}")))?;
    check_pem(
        key_pem,
        &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
    )
    .map_err(|e| CertificateError::Malformed(shown.clone(), format!("tls.key: {e}")))?;
    Ok(Certificate {
        secret: shown,
        cert_pem: cert.clone(),
        key_pem: key_pem.clone(),
    })
}

/// Checks that `text` holds a well-formed PEM block with one of `labels` (base64 body decodes).
pub(crate) fn check_pem(text: &str, labels: &[&str]) -> Result<(), String> {
    let mut reader = std::io::BufReader::new(text.as_bytes());
    let mut found = false;
    loop {
        match rustls_pemfile::read_one(&mut reader) {
            Ok(Some(item)) => {
                let ok = matches!(
                    (&item, labels[0]),
                    (rustls_pemfile::Item::X509Certificate(_), "CERTIFICATE")
                ) || (labels[0] != "CERTIFICATE"
                    && matches!(
                        item,
                        rustls_pemfile::Item::Pkcs1Key(_)
                            | rustls_pemfile::Item::Pkcs8Key(_)
                            | rustls_pemfile::Item::Sec1Key(_)
                    ));
                found |= ok;
            }
            Ok(None) => break,
            Err(e) => return Err(format!("not valid PEM: {e:?}")),
        }
    }
    if found {
        Ok(())
    } else {
        Err(format!("no {} PEM block", labels[0]))
    }
}

/// The hostnames a route gets on a listener: route ∩ listener, keeping the more specific of
/// each matching pair. `None` means no intersection; `Some(vec![])` means any host. Either side
/// may be a wildcard; [`host_matches`] is the data plane's own wildcard rule (one or more
/// leading labels), so a `*.a.com` pattern also covers the narrower wildcard `*.b.a.com`.
pub fn intersect_hostnames(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let Some(l) = listener else {
        return Some(route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![l.to_string()]);
    }
    let mut out: Vec<String> = route
        .iter()
        .filter_map(|h| {
            if h == l || host_matches(l, h) {
                Some(h.clone())
            } else if host_matches(h, l) {
                Some(l.to_string())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::intersect_hostnames as i;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hostname_intersection() {
        assert_eq!(i(None, &v(&["a.com"])), Some(v(&["a.com"])));
        assert_eq!(i(Some("a.com"), &[]), Some(v(&["a.com"])));
        assert_eq!(
            i(Some("*.a.com"), &v(&["x.a.com", "b.com"])),
            Some(v(&["x.a.com"]))
        );
        assert_eq!(i(Some("x.a.com"), &v(&["*.a.com"])), Some(v(&["x.a.com"])));
        assert_eq!(i(Some("*.a.com"), &v(&["a.com"])), None);
        assert_eq!(
            i(Some("*.a.com"), &v(&["*.b.a.com"])),
            Some(v(&["*.b.a.com"]))
        );
        assert_eq!(i(Some("a.com"), &v(&["b.com"])), None);
    }
}
