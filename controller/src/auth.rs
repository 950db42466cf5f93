//! Data-plane authentication for the config server: the data plane presents its Pod's
//! ServiceAccount token, the API server vouches for it (TokenReview), and only the
//! ServiceAccount the provisioner made for a Gateway may read that Gateway's config.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

use crate::model::ObjectKey;

/// How long a successful review is trusted before asking the API server again.
pub const CACHE_FOR: Duration = Duration::from_secs(60);

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token (data planes send their ServiceAccount token)")]
    Missing,
    /// The API server did not accept the token.
    #[error("token not authenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated, but as someone else than the Gateway's data plane.
    #[error("{user} may not read the config of Gateway {gateway} (expected {expected})")]
    Forbidden {
        /// Who the token belongs to.
        user: String,
        /// The Gateway asked for.
        gateway: String,
        /// The identity allowed.
        expected: String,
    },
}

/// The identity allowed to read a Gateway's config.
pub fn expected_user(gateway: &ObjectKey) -> String {
    format!(
        "system:serviceaccount:{}:{}",
        gateway.namespace,
        crate::naming::dataplane_name(&gateway.name)
    )
}

/// Checks an authenticated user against the Gateway.
pub fn authorize(user: &str, gateway: &ObjectKey) -> Result<(), AuthError> {
    let expected = expected_user(gateway);
    if user == expected {
        Ok(())
    } else {
        Err(AuthError::Forbidden {
            user: user.into(),
            gateway: gateway.to_string(),
            expected,
        })
    }
}

/// How the config server authenticates data planes.
pub enum Authenticator {
    /// Everyone may read every config (local development, tests).
    Open,
    /// ServiceAccount tokens checked with TokenReview.
    TokenReview {
        /// API client.
        client: kube::Client,
        /// token → (username, when reviewed).
        cache: Mutex<HashMap<String, (String, Instant)>>,
    },
}

impl Authenticator {
    /// TokenReview-based authentication.
    pub fn token_review(client: kube::Client) -> Self {
        Self::TokenReview {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization` header value for a Gateway.
    pub async fn check(&self, header: Option<&str>, gateway: &ObjectKey) -> Result<(), AuthError> {
        let Self::TokenReview { client, cache } = self else {
            return Ok(());
        };
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let cached = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .filter(|(_, at)| at.elapsed() < CACHE_FOR)
            .map(|(u, _)| u.clone());
        let user = match cached {
            Some(u) => u,
            None => {
                let user = review(client, token).await?;
                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                c.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
                c.insert(token.to_string(), (user.clone(), Instant::now()));
                user
            }
        };
        authorize(&user, gateway)
    }
}

async fn review(client: &kube::Client, token: &str) -> Result<String, AuthError> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthError::Unauthenticated(format!("TokenReview failed: {e}")))?;
    let status = out.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(AuthError::Unauthenticated(
            status.error.unwrap_or_else(|| "rejected".into()),
        ));
    }
    status
        .user
        .and_then(|u| u.username)
        .ok_or_else(|| AuthError::Unauthenticated("no username in review".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_service_account() {
        let gw = ObjectKey::new("apps", "gw");
        assert_eq!(
            authorize("system:serviceaccount:apps:pylon-gw", &gw),
            Ok(())
        );
        let err = authorize("system:serviceaccount:apps:pylon-other", &gw).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected system:serviceaccount:apps:pylon-gw"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn open_lets_everyone_in_and_review_needs_a_token() {
        let gw = ObjectKey::new("apps", "gw");
        assert_eq!(Authenticator::Open.check(None, &gw).await, Ok(()));
        // The client is never used: a missing token is refused before any review.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let auth = Authenticator::token_review(kube::Client::try_from(config).unwrap());
        assert_eq!(auth.check(None, &gw).await, Err(AuthError::Missing));
        assert_eq!(
            auth.check(Some("Basic abc"), &gw).await,
            Err(AuthError::Missing)
        );
    }
}
