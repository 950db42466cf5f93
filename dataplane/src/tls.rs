//! TLS setup: the SNI certificate resolver and server configs of HTTPS listeners and
//! terminating TLS ones, client certificate verifiers, and client configs for backend TLS and
//! the config server.
//!
//! PEM parsing lives in `pylon_config::pem`, shared with the validator and the controller.

use std::sync::Arc;

use pylon_config::pem::{PemError, certified_key, parse_certs, parse_key, root_store};
use rustls::pki_types::CertificateDer;

/// Chooses a certificate by SNI among those of an HTTPS port's listeners (or of one terminating
/// TLS listener): exact name, then the longest matching wildcard, then the first certificate.
#[derive(Debug)]
pub struct SniResolver {
    certs: Vec<(Option<String>, Arc<rustls::sign::CertifiedKey>)>,
}

impl SniResolver {
    /// All certificates of `listeners` (an HTTPS port's, or one terminating TLS listener).
    pub fn build(listeners: &[&pylon_config::Listener]) -> Result<Self, PemError> {
        let mut certs = Vec::new();
        for l in listeners {
            for c in l.tls.iter().flat_map(|t| &t.certificates) {
                let key = certified_key(&c.cert_pem, &c.key_pem)?;
                if c.hostnames.is_empty() {
                    certs.push((l.hostname.clone(), key));
                } else {
                    certs.extend(c.hostnames.iter().map(|h| (Some(h.clone()), key.clone())));
                }
            }
        }
        // Exact names first, then longer wildcards, then catch-alls; first of each wins.
        certs.sort_by_key(|(h, _)| match h {
            Some(h) if !h.starts_with('*') => (0, 0),
            Some(h) => (1, usize::MAX - h.len()),
            None => (2, 0),
        });
        Ok(SniResolver { certs })
    }

    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let by_name = sni.and_then(|sni| {
            let sni = sni.to_ascii_lowercase();
            self.certs.iter().find(|(h, _)| {
                h.as_deref()
                    .is_none_or(|h| pylon_config::host::host_matches(h, &sni))
            })
        });
        by_name.or(self.certs.first()).map(|(_, k)| k.clone())
    }

    /// An HTTPS port's server config: this resolver, h2 and http/1.1 offered by ALPN, client
    /// certificates validated when `clients` says so.
    pub fn server_config(
        self,
        clients: Option<&pylon_config::ClientValidation>,
    ) -> Result<Arc<rustls::ServerConfig>, PemError> {
        let mut cfg = self.config(clients)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// A terminating TLS listener's server config: as [`server_config`](Self::server_config)
    /// but offering no ALPN protocol. What the client speaks inside TLS goes to the backend
    /// unread, so agreeing on h2 or http/1.1 would promise what nobody checks; a client's
    /// offer is ignored, as RFC 7301 lets a server do.
    pub fn relay_config(
        self,
        clients: Option<&pylon_config::ClientValidation>,
    ) -> Result<Arc<rustls::ServerConfig>, PemError> {
        Ok(Arc::new(self.config(clients)?))
    }

    fn config(
        self,
        clients: Option<&pylon_config::ClientValidation>,
    ) -> Result<rustls::ServerConfig, PemError> {
        let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(v) => builder.with_client_cert_verifier(client_verifier(v)?),
        };
        Ok(builder.with_cert_resolver(Arc::new(self)))
    }
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The handshake-signature methods of a certificate verifier wrapping `self.inner`: both
/// verifiers here change which certificates they accept, never how signatures are checked.
macro_rules! delegate_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The client certificate verifier of an HTTPS port: chains to the CA bundle; with
/// AllowInsecureFallback, clients without a (valid) certificate are let through as well.
pub fn client_verifier(
    v: &pylon_config::ClientValidation,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, PemError> {
    let webpki = pylon_config::pem::client_verifier(&v.ca_pem)?;
    Ok(match v.mode {
        pylon_config::ClientValidationMode::AllowValidOnly => webpki,
        pylon_config::ClientValidationMode::AllowInsecureFallback => {
            Arc::new(InsecureFallback { inner: webpki })
        }
    })
}

/// Asks for a client certificate and checks it, but lets clients without one, or with one the
/// CA did not sign, complete the handshake (FrontendValidationMode AllowInsecureFallback).
/// Possession of a presented certificate's key is still proven by the handshake signature.
#[derive(Debug)]
struct InsecureFallback {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl rustls::server::danger::ClientCertVerifier for InsecureFallback {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            tracing::debug!(error = %e, "client certificate not valid; served (insecure fallback)");
        }
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    delegate_signatures!();
}

/// Verifies a backend certificate against a CA and accepts it if it is valid for any of the
/// given names (BackendTLSPolicy subjectAltNames: hostnames and URIs) instead of the SNI name.
#[derive(Debug)]
struct SanVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    hostnames: Vec<rustls::pki_types::ServerName<'static>>,
    uris: Vec<String>,
}

impl rustls::client::danger::ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut last = None;
        for name in &self.hostnames {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        if !self.uris.is_empty() {
            // webpki checks the chain before the name, so a name mismatch means the chain is
            // valid; the URI SANs are then compared here (webpki does not expose them).
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
            let presented = crate::san::uri_sans(end_entity).ok_or(
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding),
            )?;
            if presented.iter().any(|p| self.uris.contains(p)) {
                return Ok(rustls::client::danger::ServerCertVerified::assertion());
            }
            last = Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        }
        Err(last.unwrap_or_else(|| rustls::Error::General("no subject alt name to verify".into())))
    }

    delegate_signatures!();
}

/// A client config for TLS to a backend: trust only the policy's CA, verify SANs, present the
/// client certificate if one is configured.
pub fn backend_client_config(
    tls: &pylon_config::BackendTls,
) -> Result<Arc<rustls::ClientConfig>, PemError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(&tls.ca_pem)?;
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| PemError::Key(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let (mut hostnames, mut uris) = (vec![], vec![]);
    for san in &tls.subject_alt_names {
        match san {
            pylon_config::SubjectAltName::Hostname { value } => {
                if let Ok(name) = rustls::pki_types::ServerName::try_from(value.clone()) {
                    hostnames.push(name);
                }
            }
            pylon_config::SubjectAltName::Uri { value } => uris.push(value.clone()),
        }
    }
    let builder = if hostnames.is_empty() && uris.is_empty() {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SanVerifier {
                inner: webpki,
                hostnames,
                uris,
            }))
    };
    let mut cfg = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(parse_certs(c)?, parse_key(k)?)?,
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client config trusting only the certificates of `ca_pem` (the controller's config CA):
/// the data plane must not accept a config server any public CA vouches for.
pub fn ca_client_config(ca_pem: &str) -> Result<rustls::ClientConfig, PemError> {
    let roots = root_store(ca_pem)?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth())
}
