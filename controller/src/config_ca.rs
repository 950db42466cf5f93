//! The config server's certificate authority: a CA the controller generates once and keeps in a
//! Secret every replica shares (`<namespace>/pylon-config-ca`), and the serving certificates it
//! issues from it for the config server's DNS names. Data planes trust only this CA (the
//! provisioner hands them its certificate), so the CA outlives controller restarts and every
//! replica's serving certificate verifies against the same bundle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Default name of the Secret holding the CA, in the controller's namespace.
pub const DEFAULT_SECRET: &str = "pylon-config-ca";
/// How long a generated CA is valid. Data planes hold its certificate, so it is long-lived;
/// replacing it means deleting the Secret and restarting the controllers (data planes are
/// re-provisioned with the new bundle).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a serving certificate is valid; [`crate::config_tls`] renews it well before.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Common name of the generated CA: a serving certificate names it as its issuer, so a CA in
/// the Secret with another subject is refused (see [`ConfigCa::issue`]).
const CA_COMMON_NAME: &str = "pylon config CA";
/// Secret keys: the `kubernetes.io/tls` layout, so tools that understand TLS Secrets read it.
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";

/// Why the CA or a serving certificate is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Generating or signing failed.
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The Secret lacks a key or holds something unusable.
    #[error(
        "Secret {secret}: {problem}; delete it to have a new CA generated (data planes get the new bundle when re-provisioned)"
    )]
    BadSecret {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        problem: String,
    },
    /// The API server refused.
    #[error("Secret {secret}: {error}")]
    Api {
        /// `namespace/name`.
        secret: String,
        /// The API error (boxed: it is large and rare).
        error: Box<kube::Error>,
    },
    /// No usable DNS name for the serving certificate.
    #[error("no DNS name for the config server's certificate: {0}")]
    Names(String),
}

/// A CA: certificate and private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigCa {
    /// The CA certificate: what data planes trust.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A serving certificate issued by a [`ConfigCa`].
#[derive(Clone, Debug)]
pub struct ServingCert {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: String,
    /// When it stops being valid.
    pub not_after: SystemTime,
}

/// Sets a certificate's validity from a minute ago (clock skew between replicas and data
/// planes) until `until`; rcgen's `time` values are reached through `date_time_ymd`, so the
/// controller needs no direct `time` dependency.
fn validity(p: &mut CertificateParams, now: SystemTime, until: SystemTime) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    p.not_before = epoch + since(now - Duration::from_secs(60));
    p.not_after = epoch + since(until);
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl ConfigCa {
    /// A new self-signed CA (ECDSA P-256), valid for [`CA_VALIDITY`].
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut p = ca_params();
        let now = SystemTime::now();
        validity(&mut p, now, now + CA_VALIDITY);
        let cert = p.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA held by a Secret (`secret` is `namespace/name`, for messages).
    pub fn from_secret(secret: &str, s: &Secret) -> Result<Self, CaError> {
        let bad = |problem: String| CaError::BadSecret {
            secret: secret.to_string(),
            problem,
        };
        let data = s.data.clone().unwrap_or_default();
        let get = |k: &str| {
            let v = data.get(k).ok_or_else(|| bad(format!("no {k:?} key")))?;
            String::from_utf8(v.0.clone()).map_err(|_| bad(format!("{k:?} is not PEM text")))
        };
        let ca = Self {
            cert_pem: get(CERT_KEY)?,
            key_pem: get(KEY_KEY)?,
        };
        // Issuing once proves the pair is usable: the key parses, matches the certificate, and
        // the certificate is a CA this code can issue from (subject, validity).
        ca.issue(&["pylon-config-ca.check".into()])
            .map_err(|e| bad(e.to_string()))?;
        Ok(ca)
    }

    /// The Secret holding this CA.
    pub fn to_secret(&self, namespace: &str, name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "pylon".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                (
                    CERT_KEY.into(),
                    ByteString(self.cert_pem.clone().into_bytes()),
                ),
                (
                    KEY_KEY.into(),
                    ByteString(self.key_pem.clone().into_bytes()),
                ),
            ])),
            ..Default::default()
        }
    }

    /// A serving certificate for `names` (the first is its subject), valid for
    /// [`SERVING_VALIDITY`], checked to verify against this CA for every name before it is
    /// returned: a CA whose key or subject does not fit fails here, not in every data plane.
    pub fn issue(&self, names: &[String]) -> Result<ServingCert, CaError> {
        let first = names
            .first()
            .ok_or_else(|| CaError::Names("none given".into()))?;
        let ca_key =
            KeyPair::from_pem(&self.key_pem).map_err(|e| CaError::Names(format!("CA key: {e}")))?;
        let ca_der = first_cert(&self.cert_pem)?;
        // The certificate must carry this key: its DER embeds the SubjectPublicKeyInfo.
        let spki = rcgen::PublicKeyData::subject_public_key_info(&ca_key);
        if !contains(ca_der.as_ref(), &spki) {
            return Err(CaError::Names(
                "the CA certificate does not belong to the CA key".into(),
            ));
        }
        let issuer = Issuer::new(ca_params(), ca_key);
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(names.to_vec())?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, first.as_str());
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        let not_after = now + SERVING_VALIDITY;
        validity(&mut p, now, not_after);
        let cert = p.signed_by(&key, &issuer)?;
        verify(&ca_der, cert.der(), names)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>, CaError> {
    pylon_config::pem::parse_certs(pem)
        .map(|mut c| c.remove(0))
        .map_err(|e| CaError::Names(format!("CA certificate: {e}")))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Verifies `leaf` against `ca` for each name, as a data plane will.
fn verify(
    ca: &CertificateDer<'_>,
    leaf: &CertificateDer<'_>,
    names: &[String],
) -> Result<(), CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone().into_owned())
        .map_err(|e| CaError::Names(format!("CA certificate: {e}")))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| CaError::Names(format!("CA certificate: {e}")))?;
    for name in names {
        let server = ServerName::try_from(name.clone())
            .map_err(|_| CaError::Names(format!("{name:?} is not a DNS name")))?;
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            leaf,
            &[],
            &server,
            &[],
            UnixTime::now(),
        )
        .map_err(|e| {
            CaError::Names(format!(
                "a certificate issued for {name} does not verify against the CA: {e}"
            ))
        })?;
    }
    Ok(())
}

/// The DNS names the config server's certificate covers: the host of the URL data planes dial
/// and, for a Service name (`<svc>.<ns>.svc`), its `.cluster.local` form.
pub fn serving_names(config_url: &str) -> Result<Vec<String>, CaError> {
    let uri: axum::http::Uri = config_url
        .parse()
        .map_err(|_| CaError::Names(format!("--config-url {config_url:?} is not a URL")))?;
    let host = uri
        .host()
        .ok_or_else(|| CaError::Names(format!("--config-url {config_url:?} has no host")))?
        .to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Err(CaError::Names(format!(
            "--config-url {config_url:?} names an IP address; use the Service's DNS name"
        )));
    }
    let mut names = vec![host.clone()];
    if host.ends_with(".svc") {
        names.push(format!("{host}.cluster.local"));
    }
    Ok(names)
}

/// The shared CA: read from the Secret, or generated and stored there if absent. Two replicas
/// starting together may both generate one; the API server lets one create win, and the loser
/// re-reads (AlreadyExists) and uses the winner's, so all replicas serve under the same CA.
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ConfigCa, CaError> {
    let shown = format!("{namespace}/{name}");
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |error| CaError::Api {
        secret: shown.clone(),
        error: Box::new(error),
    };
    if let Some(s) = api.get_opt(name).await.map_err(api_err)? {
        return ConfigCa::from_secret(&shown, &s);
    }
    let ca = ConfigCa::generate()?;
    match api
        .create(&PostParams::default(), &ca.to_secret(namespace, name))
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %shown, "generated the config CA");
            Ok(ca)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::info!(secret = %shown, "another replica created the config CA; using it");
            let s = api.get(name).await.map_err(api_err)?;
            ConfigCa::from_secret(&shown, &s)
        }
        Err(e) => Err(api_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_ca_survives_its_secret_and_issues_verifiable_certificates() {
        let ca = ConfigCa::generate().unwrap();
        let secret = ca.to_secret("pylon-system", DEFAULT_SECRET);
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let back = ConfigCa::from_secret("pylon-system/pylon-config-ca", &secret).unwrap();
        assert_eq!(back, ca);
        let names = serving_names("https://pylon-controller.pylon-system.svc:18000").unwrap();
        assert_eq!(
            names,
            [
                "pylon-controller.pylon-system.svc",
                "pylon-controller.pylon-system.svc.cluster.local"
            ]
        );
        // `issue` verifies the leaf against the CA for every name before returning it.
        let leaf = back.issue(&names).unwrap();
        assert!(leaf.not_after > SystemTime::now() + SERVING_VALIDITY - Duration::from_secs(60));
    }

    #[test]
    fn unusable_secrets_are_refused_with_the_reason() {
        let ca = ConfigCa::generate().unwrap();
        let other = ConfigCa::generate().unwrap();
        let msg = |s: &Secret| ConfigCa::from_secret("ns/ca", s).unwrap_err().to_string();

        let mut no_key = ca.to_secret("ns", "ca");
        no_key.data.as_mut().unwrap().remove("tls.key");
        assert!(
            msg(&no_key).contains("no \"tls.key\" key"),
            "{}",
            msg(&no_key)
        );
        assert!(msg(&no_key).contains("delete it"), "says how to recover");

        // Certificate and key of different CAs (e.g. a hand-edited Secret).
        let mixed = ConfigCa {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        }
        .to_secret("ns", "ca");
        assert!(
            msg(&mixed).contains("does not belong to the CA key"),
            "{}",
            msg(&mixed)
        );

        // A CA with another subject than the one this controller issues as.
        let key = KeyPair::generate().unwrap();
        let mut p = ca_params();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "someone else's CA");
        let foreign = ConfigCa {
            cert_pem: p.self_signed(&key).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
        .to_secret("ns", "ca");
        assert!(
            msg(&foreign).contains("does not verify against the CA"),
            "{}",
            msg(&foreign)
        );
    }

    #[test]
    fn serving_names_need_a_dns_host() {
        assert_eq!(
            serving_names("https://config.example.com:443").unwrap(),
            ["config.example.com"]
        );
        assert!(
            serving_names("https://10.0.0.1:18000")
                .unwrap_err()
                .to_string()
                .contains("IP address")
        );
        assert!(serving_names("not a url").is_err());
    }
}
