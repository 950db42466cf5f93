//! TLS material: PEM parsing, the SNI certificate resolver for HTTPS listeners, and client
//! configs for backend TLS.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
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
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key in a PEM bundle, checked to be usable by rustls.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?
        .ok_or(TlsError::NoKey)?;
    rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Key(e.to_string()))?;
    Ok(key)
}

/// A rustls signing key from PEM chain + key.
pub fn certified_key(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let certs = parse_certs(cert_pem)?;
    let key = parse_key(key_pem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Key(e.to_string()))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)))
}
