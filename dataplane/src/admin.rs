//! The admin server (axum): `/ready`, `/metrics` (Prometheus text) and `/config_dump` (private keys redacted).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/config_dump", get(config_dump))
        .with_state(shared)
}

/// 200 once a valid config is loaded (and not draining); the body says why otherwise and
/// reports the last rejection.
async fn ready(State(s): State<Arc<Shared>>) -> Response {
    let last_error = s.last_error.lock().expect("poisoned").clone();
    let version = s.table().map(|t| t.version.clone());
    let body =
        serde_json::json!({ "ready": s.ready(), "version": version, "lastError": last_error });
    let status = if s.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(s.ready()),
    )
        .into_response()
}

async fn config_dump(State(s): State<Arc<Shared>>) -> Response {
    match s.table() {
        Some(t) => {
            let mut config = serde_json::to_value(&*t.config).unwrap_or_default();
            redact_keys(&mut config);
            axum::Json(serde_json::json!({ "version": t.version, "config": config }))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no config loaded\n").into_response(),
    }
}

/// Private keys never leave the process: `keyPem` and `clientKeyPem` are replaced.
fn redact_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k == "keyPem" || k == "clientKeyPem" {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_keys(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_redacted() {
        let mut v = serde_json::json!({"listeners": [{"tls": {"certificates": [{"certPem": "C", "keyPem": "K"}]}}],
            "backends": {"b": {"tls": {"clientKeyPem": "K2", "caPem": "CA"}}}});
        super::redact_keys(&mut v);
        let s = v.to_string();
        assert!(!s.contains("\"K\"") && !s.contains("K2"), "{s}");
        assert!(s.contains("\"C\"") && s.contains("CA"));
    }
}
