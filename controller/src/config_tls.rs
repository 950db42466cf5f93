//! Serves the config server over TLS: a rustls acceptor in front of the axum router (HTTP/2 or
//! HTTP/1.1 by ALPN), with the serving certificate issued by the [`ConfigCa`] and renewed in
//! place long before it expires, so a controller that runs for months never serves an expired
//! certificate and open streams are not interrupted by the renewal.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config_ca::{CaError, ConfigCa};

/// A handshake that takes longer than this is dropped (a stalled client holds no task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Renew the serving certificate once less than this much of its validity is left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the renewal task looks.
const RENEW_CHECK: Duration = Duration::from_secs(3600);

/// The serving certificate, swapped in place on renewal (new handshakes get the new one).
#[derive(Debug)]
pub struct ServingKey {
    current: RwLock<(Arc<CertifiedKey>, SystemTime)>,
}

fn certified(ca: &ConfigCa, names: &[String]) -> Result<(Arc<CertifiedKey>, SystemTime), CaError> {
    let cert = ca.issue(names)?;
    let key = pylon_config::pem::certified_key(&cert.cert_pem, &cert.key_pem)
        .map_err(|e| CaError::Names(format!("serving certificate: {e}")))?;
    Ok((key, cert.not_after))
}

impl ServingKey {
    /// Issues the first serving certificate for `names`.
    pub fn issue(ca: &ConfigCa, names: &[String]) -> Result<Arc<Self>, CaError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified(ca, names)?),
        }))
    }

    /// When the current certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.current.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Reissues the certificate if less than `before` of it is left; `true` if it did.
    pub fn renew_if_due(
        &self,
        ca: &ConfigCa,
        names: &[String],
        before: Duration,
    ) -> Result<bool, CaError> {
        let due = self
            .not_after()
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left >= before);
        if due {
            return Ok(false);
        }
        let fresh = certified(ca, names)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(true)
    }

    /// Renews forever, checking every hour.
    pub async fn renew_loop(self: Arc<Self>, ca: ConfigCa, names: Vec<String>) {
        loop {
            tokio::time::sleep(RENEW_CHECK).await;
            match self.renew_if_due(&ca, &names, RENEW_BEFORE) {
                Ok(true) => tracing::info!("config server certificate renewed"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "renewing the config server certificate failed; retrying in an hour")
                }
            }
        }
    }

    /// A rustls server config presenting this certificate, offering h2 and http/1.1 by ALPN.
    pub fn server_config(self: Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(self);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

impl ResolvesServerCert for ServingKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// Resolves once `stop` is true (or its sender is gone). Returns `()`, not the watch guard,
/// so the futures awaiting it stay `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `router` over TLS on `listener` until `stop` turns true; then stops accepting, asks
/// every connection to close gracefully (in-flight requests finish) and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "config server accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let (acceptor, router, mut stop) = (acceptor.clone(), router.clone(), stop.clone());
        conns.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    // A data plane with the wrong CA aborts here; say so where operators look.
                    tracing::info!(%peer, error = %e, "config server TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| {
                let mut router = router.clone();
                tower_service::Service::call(&mut router, req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "config connection ended");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// Why the config URL does not fit the config server's mode.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    /// TLS mode with an http:// URL: data planes would dial plain HTTP and fail.
    #[error(
        "--config-url {0:?} is http:// but the config server serves TLS: use https://, or pass --config-plaintext to serve plain HTTP (tests, local development)"
    )]
    HttpWithTls(String),
    /// Plaintext mode with an https:// URL.
    #[error("--config-url {0:?} is https:// but --config-plaintext was given: use http://")]
    HttpsWithPlaintext(String),
    /// Neither.
    #[error("--config-url {0:?} is not an http(s)://HOST:PORT URL")]
    Invalid(String),
}

/// Checks that `url` (what data planes are told to dial) matches how the config server serves.
pub fn check_config_url(url: &str, plaintext: bool) -> Result<(), UrlError> {
    let uri: axum::http::Uri = url.parse().map_err(|_| UrlError::Invalid(url.into()))?;
    if uri.host().is_none() {
        return Err(UrlError::Invalid(url.into()));
    }
    match (uri.scheme_str(), plaintext) {
        (Some("https"), false) | (Some("http"), true) => Ok(()),
        (Some("http"), false) => Err(UrlError::HttpWithTls(url.into())),
        (Some("https"), true) => Err(UrlError::HttpsWithPlaintext(url.into())),
        _ => Err(UrlError::Invalid(url.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_url_must_match_the_mode() {
        assert_eq!(check_config_url("https://c.ns.svc:18000", false), Ok(()));
        assert_eq!(check_config_url("http://c.ns.svc:18000", true), Ok(()));
        let e = check_config_url("http://c.ns.svc:18000", false).unwrap_err();
        assert!(e.to_string().contains("--config-plaintext"), "{e}");
        assert!(matches!(
            check_config_url("https://c:1", true),
            Err(UrlError::HttpsWithPlaintext(_))
        ));
        assert!(matches!(
            check_config_url("ftp://c:1", false),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn the_serving_certificate_is_renewed_in_place_when_due() {
        let ca = ConfigCa::generate().unwrap();
        let names = vec!["c.ns.svc".to_string()];
        let key = ServingKey::issue(&ca, &names).unwrap();
        let first = key.not_after();
        assert!(!key.renew_if_due(&ca, &names, RENEW_BEFORE).unwrap());
        assert_eq!(key.not_after(), first, "not due: kept");
        // Due once less than `before` is left: a longer window than the validity forces it.
        std::thread::sleep(Duration::from_millis(1100));
        let always = crate::config_ca::SERVING_VALIDITY + Duration::from_secs(3600);
        assert!(key.renew_if_due(&ca, &names, always).unwrap());
        assert!(
            key.not_after() > first,
            "a fresh certificate was swapped in"
        );
    }
}
