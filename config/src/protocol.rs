//! Wire types of config protocol v1 between the controller and the data plane
//! (documented in `api-docs/config-protocol.md`), used by both sides.
//!
//! The data plane sends `GET /v1/gateways/{namespace}/{name}/config?pod={pod}[&version={v}]`;
//! the answer is an `application/x-ndjson` stream of [`Update`]s: a snapshot first, or, when
//! the data plane named the version it runs and the controller still knows it, a delta from it
//! (nothing at all if it is current); then deltas. After applying or rejecting an update it
//! sends an [`Ack`] to `POST /v1/gateways/{namespace}/{name}/ack`.

use serde::{Deserialize, Serialize};

use super::Config;
use crate::delta::Delta;

/// Content type of the update stream.
pub const STREAM_CONTENT_TYPE: &str = "application/x-ndjson";

/// Path of the update stream for a Gateway.
pub fn config_path(namespace: &str, name: &str) -> String {
    format!("/v1/gateways/{namespace}/{name}/config")
}

/// Path the data plane posts [`Ack`]s to.
pub fn ack_path(namespace: &str, name: &str) -> String {
    format!("/v1/gateways/{namespace}/{name}/ack")
}

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Update {
    /// The full config; the first line unless the stream resumes, may be repeated.
    Snapshot {
        version: String,
        config: Box<Config>,
    },
    /// The changes from config `base` (which the data plane must be running) to `version`.
    Delta {
        version: String,
        base: String,
        delta: Delta,
    },
    /// Keep-alive, about every 15 s.
    Ping,
}

/// The data plane's answer to a snapshot or endpoints update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub pod: String,
    pub version: String,
    pub accepted: bool,
    /// Why the update was rejected (only when `accepted` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let ping: Update = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, Update::Ping);
        let ep: Update = serde_json::from_str(
            r#"{"type":"delta","version":"7","base":"6","delta":{"backends":{"b":{"endpoints":[{"address":"10.0.0.1:80","ready":false}]}},"removedBackends":["c"]}}"#,
        )
        .unwrap();
        let Update::Delta {
            version,
            base,
            delta,
        } = ep
        else {
            panic!("not a delta")
        };
        assert_eq!((version.as_str(), base.as_str()), ("7", "6"));
        assert_eq!(
            delta.backends["b"].endpoints[0].state,
            crate::EndpointState::NotServing
        );
        assert_eq!(delta.removed_backends, ["c"]);
        assert!(
            serde_json::from_str::<Update>(
                r#"{"type":"delta","version":"7","base":"6","delta":{"nope":1}}"#
            )
            .is_err(),
            "unknown delta fields are refused"
        );
        let ack = Ack {
            pod: "p".into(),
            version: "7".into(),
            accepted: true,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"pod":"p","version":"7","accepted":true}"#
        );
    }
}
