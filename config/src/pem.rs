//! PEM → rustls: certificate chains, private keys, CA bundles and client-certificate verifiers.
//!
//! Here, not in the data plane's TLS setup, because both sides need the same answer: the
//! validator rejects a config whose PEM the data plane could not load, and the controller loads
//! its own config-server CA and serving certificate with the same parser.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material is unusable; the messages end up in validation errors and logs.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("PEM parse error: {0}")]
    Pem(String),
    #[error("no certificate found in PEM")]
    NoCertificate,
    #[error("no private key found in PEM")]
    NoKey,
    #[error("unusable key: {0}")]
    Key(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// All certificates in a PEM bundle (error if none).
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key in a PEM bundle, checked to be usable by rustls.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PemError::Pem(e.to_string()))?
        .ok_or(PemError::NoKey)?;
    rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| PemError::Key(e.to_string()))?;
    Ok(key)
}

/// Trust anchors from a PEM CA bundle (error if it holds no certificate or a bad one).
pub fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// A rustls signing key from PEM chain + key.
pub fn certified_key(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::sign::CertifiedKey>, PemError> {
    let certs = parse_certs(cert_pem)?;
    let key = parse_key(key_pem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| PemError::Key(e.to_string()))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)))
}

/// A verifier accepting client certificates that chain to the PEM CA bundle `ca_pem` (the
/// strict one; the data plane wraps it for AllowInsecureFallback).
pub fn client_verifier(
    ca_pem: &str,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, PemError> {
    let roots = root_store(ca_pem)?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| PemError::Key(e.to_string()))
}
