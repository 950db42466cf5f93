//! GatewayClass acceptance and Gateway listener validation.

use std::collections::BTreeMap;

use crate::features::SUPPORTED_FEATURES;
use crate::model::GATEWAY_GROUP;
use crate::model::ObjectKey;
use crate::model::gateway::{
    Gateway, GatewayClass, Listener, ListenerSet, RouteGroupKind, TlsMode,
};
use crate::snapshot::Snapshot;

use super::output::{Condition, GatewayClassStatus, ListenerStatus};
use super::refs::{self, Certificate};
use crate::translate::reason::{ConditionType, Reason};

/// Status of a GatewayClass that names this controller.
pub fn class_status(s: &Snapshot, class: &GatewayClass) -> GatewayClassStatus {
    let g = class.meta.generation;
    let accepted = match super::params::class_params(s, class) {
        Ok(_) => Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Handled by Pylon",
            g,
        ),
        Err(e) => Condition::new(
            ConditionType::Accepted,
            false,
            Reason::InvalidParameters,
            e.to_string(),
            g,
        ),
    };
    GatewayClassStatus {
        conditions: vec![
            accepted,
            Condition::new(
                ConditionType::SupportedVersion,
                true,
                Reason::SupportedVersion,
                "Gateway API v1.5 is supported",
                g,
            ),
        ],
        supported_features: SUPPORTED_FEATURES.iter().map(|f| f.to_string()).collect(),
    }
}

/// Route kinds a protocol serves.
fn kinds_for(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
        "TLS" => &["TLSRoute"],
        "TCP" => &["TCPRoute"],
        "UDP" => &["UDPRoute"],
        _ => &[],
    }
}

/// The port a listener takes: UDP ports are a space of their own, so a TCP and a UDP listener
/// may share a number.
fn port_key(l: &Listener) -> (bool, i32) {
    (l.protocol == "UDP", l.port)
}

/// The hostname that tells a listener from others on its port: TCP and UDP listeners have
/// none (nothing in a segment or datagram names a host), so two of them on a port clash.
pub fn effective_hostname(l: &Listener) -> Option<&str> {
    match l.protocol.as_str() {
        "TCP" | "UDP" => None,
        _ => l.hostname.as_deref(),
    }
}

/// Who declared a listener: the Gateway itself or a ListenerSet attached to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `Gateway.spec.listeners`.
    Gateway,
    /// A ListenerSet's `spec.listeners`.
    ListenerSet(ObjectKey),
}

/// A listener after validation.
pub struct ListenerInfo<'a> {
    /// The listener.
    pub listener: &'a Listener,
    /// Who declared it.
    pub owner: Owner,
    /// The owner's namespace: `allowedRoutes` "Same" and certificate references are relative
    /// to it.
    pub namespace: String,
    /// Route kinds it accepts.
    pub kinds: Vec<RouteGroupKind>,
    /// Whether routes may attach (Accepted).
    pub accepted: bool,
    /// Whether it is served (accepted, refs resolved, not conflicted).
    pub programmed: bool,
    /// Whether it terminates TLS (HTTPS, or TLS in Terminate mode): then `certificates` and
    /// `client_validation` apply.
    pub terminates: bool,
    /// Resolved certificates (when it terminates).
    pub certificates: Vec<Certificate>,
    /// Client certificate validation of its port (Gateway `spec.tls.frontend`).
    pub client_validation: Option<pylon_config::ClientValidation>,
    /// Conditions other than the ones derived at the end.
    pub problems: ListenerProblems,
}

/// What went wrong with a listener, by condition.
#[derive(Default)]
pub struct ListenerProblems {
    /// Accepted=False (reason, message).
    pub not_accepted: Option<(Reason, String)>,
    /// ResolvedRefs=False (reason, message).
    pub unresolved: Option<(Reason, String)>,
    /// Conflicted=True (reason, message).
    pub conflicted: Option<(Reason, String)>,
}

/// The client certificate the Gateway presents to TLS backends (`spec.tls.backend`), if any.
pub fn backend_client_certificate(
    s: &Snapshot,
    gw: &Gateway,
) -> Option<Result<Certificate, refs::CertificateError>> {
    let r = gw
        .spec
        .tls
        .as_ref()?
        .backend
        .as_ref()?
        .client_certificate_ref
        .as_ref()?;
    Some(refs::certificate(s, "Gateway", &gw.meta.namespace, r))
}

impl Owner {
    /// The name of its listener `listener` in the data-plane config: unique across the Gateway
    /// and its ListenerSets (whose listener names are only unique within each set).
    pub fn config_name(&self, listener: &str) -> String {
        match self {
            Owner::Gateway => listener.to_string(),
            Owner::ListenerSet(set) => format!("{}/{}/{listener}", set.namespace, set.name),
        }
    }
}

impl ListenerInfo<'_> {
    /// The listener's name in the data-plane config (see [`Owner::config_name`]).
    pub fn config_name(&self) -> String {
        self.owner.config_name(&self.listener.name)
    }
}

/// Validates every listener of a Gateway: its own, then those of the ListenerSets attached to
/// it (in precedence order: oldest first, then by namespace/name).
pub fn listeners<'a>(
    s: &Snapshot,
    gw: &'a Gateway,
    sets: &[&'a ListenerSet],
) -> Vec<ListenerInfo<'a>> {
    let mut out: Vec<ListenerInfo<'a>> = gw
        .spec
        .listeners
        .iter()
        .map(|l| validate(s, gw, l, Owner::Gateway, &gw.meta.namespace))
        .collect();
    mark_conflicts(&mut out);
    for set in sets {
        for l in &set.spec.listeners {
            let owner = Owner::ListenerSet(set.meta.key());
            let mut info = validate(s, gw, l, owner, &set.meta.namespace);
            mark_conflict_with_earlier(&mut info, &out);
            out.push(info);
        }
    }
    for info in &mut out {
        info.accepted = info.problems.not_accepted.is_none();
        // Unsupported route kinds next to supported ones do not stop the listener serving
        // the supported ones; any other unresolved reference does.
        let refs_ok = match &info.problems.unresolved {
            None => true,
            Some((reason, _)) => *reason == Reason::InvalidRouteKinds && !info.kinds.is_empty(),
        };
        info.programmed = info.accepted && refs_ok && info.problems.conflicted.is_none();
    }
    out
}

fn validate<'a>(
    s: &Snapshot,
    gw: &Gateway,
    l: &'a Listener,
    owner: Owner,
    namespace: &str,
) -> ListenerInfo<'a> {
    let mut p = ListenerProblems::default();
    let supported = kinds_for(&l.protocol);
    if supported.is_empty() {
        p.not_accepted = Some((
            Reason::UnsupportedProtocol,
            format!("protocol {:?} is not supported", l.protocol),
        ));
    }
    let kinds =
        if l.allowed_routes.kinds.is_empty() {
            supported
                .iter()
                .map(|k| RouteGroupKind {
                    group: GATEWAY_GROUP.into(),
                    kind: k.to_string(),
                })
                .collect()
        } else {
            let (ok, bad): (Vec<_>, Vec<_>) =
                l.allowed_routes.kinds.iter().cloned().partition(|k| {
                    k.group == GATEWAY_GROUP && supported.contains(&k.kind.as_str())
                });
            if !bad.is_empty() {
                let names: Vec<String> = bad
                    .iter()
                    .map(|k| format!("{}/{}", k.group, k.kind))
                    .collect();
                p.unresolved = Some((
                    Reason::InvalidRouteKinds,
                    format!(
                        "route kinds not supported on {}: {}",
                        l.protocol,
                        names.join(", ")
                    ),
                ));
            }
            ok
        };
    let mode = l.tls.as_ref().map(|t| t.mode);
    // Whether the data plane completes the handshake: then the certificates (and the
    // Gateway's client validation) apply.
    let terminates = match (l.protocol.as_str(), mode) {
        ("HTTPS", Some(TlsMode::Terminate)) | ("TLS", Some(TlsMode::Terminate)) => true,
        ("TLS", Some(TlsMode::Passthrough)) => false,
        ("HTTPS", None) => {
            p.not_accepted
                .get_or_insert((Reason::UnsupportedValue, "HTTPS needs tls".into()));
            false
        }
        ("HTTPS" | "TLS", Some(m)) => {
            p.not_accepted.get_or_insert((
                Reason::UnsupportedValue,
                format!("tls mode {m:?} is not supported on {}", l.protocol),
            ));
            false
        }
        ("TLS", None) => {
            p.not_accepted.get_or_insert((
                Reason::UnsupportedValue,
                "a TLS listener needs tls.mode (Passthrough or Terminate)".into(),
            ));
            false
        }
        _ => false,
    };
    let mut certificates = vec![];
    match l.tls.as_ref().filter(|_| terminates) {
        Some(tls) if tls.certificate_refs.is_empty() => {
            p.unresolved = Some((
                Reason::InvalidCertificateRef,
                format!(
                    "{} listener terminates TLS but has no certificateRefs",
                    l.protocol
                ),
            ));
        }
        Some(tls) => {
            let from_kind = match owner {
                Owner::Gateway => "Gateway",
                Owner::ListenerSet(_) => "ListenerSet",
            };
            for r in &tls.certificate_refs {
                match refs::certificate(s, from_kind, namespace, r) {
                    Ok(c) => certificates.push(c),
                    Err(e) => {
                        // The first problem decides the reason; later ones add nothing new.
                        if p.unresolved.is_none() {
                            p.unresolved = Some((e.reason(), e.to_string()));
                        }
                    }
                }
            }
        }
        None => {}
    }
    let mut client_validation = None;
    let frontend = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    if terminates
        && let Some(v) = frontend.and_then(|f| super::ca::frontend_validation(s, gw, f, l.port))
    {
        if let Some(e) = &v.error {
            p.unresolved.get_or_insert((e.reason(), e.to_string()));
        }
        match v.validation {
            Some(cv) => client_validation = Some(cv),
            // Serving without the validation asked for would let every client in.
            None => {
                let why = v.error.map_or_else(
                    || "caCertificateRefs is empty".to_string(),
                    |e| e.to_string(),
                );
                p.not_accepted.get_or_insert((
                    Reason::NoValidCACertificate,
                    format!("no valid CA certificate for client validation: {why}"),
                ));
            }
        }
    }
    ListenerInfo {
        listener: l,
        owner,
        namespace: namespace.to_string(),
        kinds,
        accepted: false,
        programmed: false,
        terminates,
        certificates,
        client_validation,
        problems: p,
    }
}

/// Marks listeners sharing a port with a different protocol (ProtocolConflict) or with the same
/// protocol and hostname (HostnameConflict).
fn mark_conflicts(infos: &mut [ListenerInfo<'_>]) {
    let mut by_port: BTreeMap<(bool, i32), Vec<usize>> = BTreeMap::new();
    for (i, info) in infos.iter().enumerate() {
        if info.problems.not_accepted.is_none() {
            by_port.entry(port_key(info.listener)).or_default().push(i);
        }
    }
    for idx in by_port.values() {
        for &i in idx {
            let me = infos[i].listener;
            let protocol_clash = idx
                .iter()
                .any(|&j| infos[j].listener.protocol != me.protocol);
            let host_clash = idx.iter().any(|&j| {
                j != i
                    && infos[j].listener.protocol == me.protocol
                    && effective_hostname(infos[j].listener) == effective_hostname(me)
            });
            if protocol_clash {
                infos[i].problems.conflicted = Some((
                    Reason::ProtocolConflict,
                    format!("port {} is used with another protocol", me.port),
                ));
            } else if host_clash {
                let why = match me.protocol.as_str() {
                    "TCP" | "UDP" => format!(
                        "another {} listener uses port {} (hostnames do not tell them apart)",
                        me.protocol, me.port
                    ),
                    _ => format!("another listener on port {} has the same hostname", me.port),
                };
                infos[i].problems.conflicted = Some((Reason::HostnameConflict, why));
            }
        }
    }
}

/// A ListenerSet listener loses to any earlier listener (the Gateway's, or an older set's) on
/// its port with another protocol or the same hostname: it is not accepted, the earlier one
/// keeps serving.
/// The conflict is checked even for a listener that is invalid on its own (e.g. a protocol
/// Pylon does not serve): the port is taken either way, and that is what its owner must fix.
fn mark_conflict_with_earlier(info: &mut ListenerInfo<'_>, earlier: &[ListenerInfo<'_>]) {
    let me = info.listener;
    let live = earlier.iter().filter(|e| {
        port_key(e.listener) == port_key(me)
            && e.problems.not_accepted.is_none()
            && e.problems.conflicted.is_none()
    });
    let mut conflict = None;
    for e in live {
        if e.listener.protocol != me.protocol {
            conflict = Some((
                Reason::ProtocolConflict,
                format!(
                    "port {} is used with protocol {} by listener {:?}",
                    me.port,
                    e.listener.protocol,
                    e.config_name()
                ),
            ));
            break;
        }
        if effective_hostname(e.listener) == effective_hostname(me) {
            conflict.get_or_insert((
                Reason::HostnameConflict,
                format!(
                    "listener {:?} on port {} has the same hostname",
                    e.config_name(),
                    me.port
                ),
            ));
        }
    }
    if let Some(c) = conflict {
        info.problems.not_accepted = Some(c.clone());
        info.problems.conflicted = Some(c);
    }
}

/// The listener's status once routes are counted.
pub fn listener_status(info: &ListenerInfo<'_>, attached: i32, generation: i64) -> ListenerStatus {
    let g = generation;
    let p = &info.problems;
    let accepted = match &p.not_accepted {
        Some((r, m)) => Condition::new(ConditionType::Accepted, false, *r, m.clone(), g),
        None => Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Listener is valid",
            g,
        ),
    };
    let resolved = match &p.unresolved {
        Some((r, m)) => Condition::new(ConditionType::ResolvedRefs, false, *r, m.clone(), g),
        None => Condition::new(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references resolved",
            g,
        ),
    };
    let conflicted = match &p.conflicted {
        Some((r, m)) => Condition::new(ConditionType::Conflicted, true, *r, m.clone(), g),
        None => Condition::new(
            ConditionType::Conflicted,
            false,
            Reason::NoConflicts,
            "No conflicts",
            g,
        ),
    };
    let programmed = if info.programmed {
        Condition::new(
            ConditionType::Programmed,
            true,
            Reason::Programmed,
            "Listener is configured",
            g,
        )
    } else if let Some((reason, message)) = &p.conflicted {
        Condition::new(
            ConditionType::Programmed,
            false,
            *reason,
            message.clone(),
            g,
        )
    } else {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "Listener is not valid",
            g,
        )
    };
    ListenerStatus {
        name: info.listener.name.clone(),
        supported_kinds: info.kinds.clone(),
        attached_routes: attached,
        conditions: vec![accepted, conflicted, programmed, resolved],
    }
}
