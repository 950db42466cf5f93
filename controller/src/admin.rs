//! The controller's admin server: /healthz, /ready, /metrics, /config_dump.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio::sync::watch;

use crate::translate::output::Translation;

/// The latest translation (`None` until the first one).
pub type Latest = watch::Receiver<Option<Arc<Translation>>>;

/// The admin routes.
pub fn router(latest: Latest) -> axum::Router {
    let ready = latest.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/ready",
            get(move || {
                let ready = ready.borrow().is_some();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "waiting for the first translation\n",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::render(),
                )
            }),
        )
        .route(
            "/config_dump",
            get(move || {
                let t = latest.borrow().clone();
                async move { dump(t.as_deref()) }
            }),
        )
}

/// The translation as JSON, private keys redacted.
fn dump(t: Option<&Translation>) -> Response {
    let Some(t) = t else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no translation yet\n").into_response();
    };
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    redact(&mut v);
    axum::Json(v).into_response()
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k == "keyPem" || k == "clientKeyPem" {
                    *v = Value::String("<redacted>".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_private_keys() {
        let mut v = serde_json::json!({"a": [{"certPem": "C", "keyPem": "K"}]});
        super::redact(&mut v);
        assert_eq!(v["a"][0]["keyPem"], "<redacted>");
        assert_eq!(v["a"][0]["certPem"], "C");
    }
}
