//! The UDP ports of a route table: a port space of their own, since a TCP and a UDP listener
//! may share a number. A port holds only what a new session needs (its listener's rule), so a
//! running session keeps nothing of the table and a config swap frees the old one.

use super::{BTreeMap, BackendRt, CompiledRule, HashMap, compile_rule};
use pylon_config::timestamp::parse_timestamp;
use pylon_config::{Config, ListenerProtocol};
use std::sync::Arc;

/// A UDP listener, as the data plane starts sessions on it.
#[derive(Debug)]
pub struct UdpPort {
    pub listener: String,
    /// The rule of the listener's route: the oldest of its routes (`creationTimestamp`, then
    /// `namespace/name`), as for TCP listeners and as the Gateway API resolves conflicts. A
    /// datagram names nothing to choose among routes by, so the others take nothing. `None`
    /// when no route is attached: datagrams are dropped.
    pub rule: Option<Arc<CompiledRule>>,
}

/// The UDP ports of `config`, built whole on every change: one rule per listener costs less
/// than tracking what a delta touched.
pub(super) fn ports(
    config: &Config,
    backends: &HashMap<String, Arc<BackendRt>>,
) -> BTreeMap<u16, UdpPort> {
    config
        .listeners
        .iter()
        .filter(|l| l.protocol == ListenerProtocol::Udp)
        .map(|l| {
            let rule = l
                .routes
                .iter()
                // Validated: every timestamp parses.
                .min_by_key(|r| {
                    let created = parse_timestamp(&r.creation_timestamp).unwrap_or(i128::MAX);
                    (created, &r.namespace, &r.name)
                })
                .and_then(|r| {
                    let label = format!("{}/{}", r.namespace, r.name);
                    // Validated: a UDPRoute has exactly one rule.
                    let rule = r.rules.first()?;
                    Some(Arc::new(compile_rule(&label, 0, r.kind, rule, backends)))
                });
            let port = UdpPort {
                listener: l.name.clone(),
                rule,
            };
            (l.port, port)
        })
        .collect()
}
