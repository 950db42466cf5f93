//! Route attachment, shared by every route kind: parentRefs → listeners, hostnames, backendRefs.

use std::collections::BTreeMap;

use crate::model::route::{
    BackendRef, GrpcMatch, GrpcRule, HttpMatch, HttpRule, ParentRef, Route, RouteRule,
};
use crate::model::{GATEWAY_GROUP, ObjectKey};
use crate::snapshot::Snapshot;

use super::config::{
    BackendConfig, ClusterConfig, GatewayConfig, ListenerConfig, RouteConfig, RuleConfig,
    cluster_name,
};
use super::gateway::ListenerInfo;
use super::output::{Condition, RouteParentStatus};
use super::refs::{self, Reference};

/// Per-kind glue between a rule and the data-plane config.
pub trait TranslateRule: RouteRule {
    /// The match type the data plane receives.
    type Match: Clone;
    /// Filter types this kind supports.
    const FILTERS: &'static [&'static str];
    /// The rule's matches.
    fn config_matches(&self) -> Vec<Self::Match>;
    /// The rule's timeouts.
    fn config_timeouts(&self) -> Option<crate::model::route::HttpTimeouts>;
    /// Upstream protocol for this kind when the Service port does not say.
    const DEFAULT_UPSTREAM: &'static str;
    /// Adds a route to a listener's config.
    fn push(listener: &mut ListenerConfig, route: RouteConfig<Self::Match>);
}

impl TranslateRule for HttpRule {
    type Match = HttpMatch;
    const FILTERS: &'static [&'static str] = &[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
    ];
    const DEFAULT_UPSTREAM: &'static str = "http1";
    fn config_matches(&self) -> Vec<HttpMatch> {
        self.matches.clone()
    }
    fn config_timeouts(&self) -> Option<crate::model::route::HttpTimeouts> {
        self.timeouts.clone()
    }
    fn push(listener: &mut ListenerConfig, route: RouteConfig<HttpMatch>) {
        listener.http_routes.push(route);
    }
}

impl TranslateRule for GrpcRule {
    type Match = GrpcMatch;
    const FILTERS: &'static [&'static str] = &[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
    ];
    const DEFAULT_UPSTREAM: &'static str = "h2c";
    fn config_matches(&self) -> Vec<GrpcMatch> {
        self.matches.clone()
    }
    fn config_timeouts(&self) -> Option<crate::model::route::HttpTimeouts> {
        None
    }
    fn push(listener: &mut ListenerConfig, route: RouteConfig<GrpcMatch>) {
        listener.grpc_routes.push(route);
    }
}

/// A Gateway of this controller with its validated listeners.
pub struct OwnedGateway<'a> {
    /// Listener validation results, in spec order.
    pub listeners: Vec<ListenerInfo<'a>>,
    /// Routes accepted per listener index.
    pub attached: Vec<i32>,
    /// The config being built.
    pub config: GatewayConfig,
}

/// Why a backend reference does not resolve.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not a core Service.
    #[error("backendRef {0}: kind is not supported (only core Services)")]
    InvalidKind(String),
    /// Cross-namespace without a grant.
    #[error("backendRef {0}: not permitted by any ReferenceGrant")]
    RefNotPermitted(String),
    /// No such Service or port.
    #[error("backendRef {0}: {1}")]
    NotFound(String, &'static str),
    /// The Service port's appProtocol is not one Pylon speaks.
    #[error("backendRef {0}: appProtocol {1:?} is not supported")]
    UnsupportedProtocol(String, String),
}

impl BackendError {
    /// The ResolvedRefs reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidKind(_) => "InvalidKind",
            Self::RefNotPermitted(_) => "RefNotPermitted",
            Self::NotFound(..) => "BackendNotFound",
            Self::UnsupportedProtocol(..) => "UnsupportedProtocol",
        }
    }
}

/// Resolves a backend reference of a route in `route_ns` to a cluster.
pub fn resolve_backend<R: TranslateRule>(
    s: &Snapshot,
    route_ns: &str,
    b: &BackendRef,
) -> Result<(String, ClusterConfig), BackendError> {
    let ns = b.namespace.clone().unwrap_or_else(|| route_ns.to_string());
    let shown = format!("{ns}/{}", b.name);
    if !b.group.is_empty() || b.kind != "Service" {
        return Err(BackendError::InvalidKind(format!(
            "{}/{} {shown}",
            b.group, b.kind
        )));
    }
    let reference = Reference {
        from_group: GATEWAY_GROUP,
        from_kind: R::KIND,
        from_namespace: route_ns,
        to_group: "",
        to_kind: "Service",
        to_namespace: &ns,
        to_name: &b.name,
    };
    if !refs::permitted(s, &reference) {
        return Err(BackendError::RefNotPermitted(shown));
    }
    let svc = s
        .services
        .get(&ObjectKey::new(ns.clone(), b.name.clone()))
        .ok_or(BackendError::NotFound(shown.clone(), "Service not found"))?;
    let port = b
        .port
        .ok_or(BackendError::NotFound(shown.clone(), "port is required"))?;
    let sp = svc
        .ports
        .iter()
        .find(|p| p.port == port)
        .ok_or(BackendError::NotFound(
            shown.clone(),
            "Service has no such port",
        ))?;
    let protocol = match sp.app_protocol.as_deref() {
        None | Some("http") => R::DEFAULT_UPSTREAM,
        Some("kubernetes.io/h2c") => "h2c",
        Some("kubernetes.io/ws") => "ws",
        Some(other) => return Err(BackendError::UnsupportedProtocol(shown, other.into())),
    };
    let cluster = ClusterConfig {
        namespace: ns.clone(),
        service: b.name.clone(),
        port,
        protocol: protocol.into(),
    };
    Ok((cluster_name(&ns, &b.name, port), cluster))
}

/// Rules of a route checked once (independent of the parent).
struct CheckedRules<R: TranslateRule> {
    /// Valid rules as config (backends resolved).
    rules: Vec<RuleConfig<R::Match>>,
    /// Clusters the valid rules use.
    clusters: BTreeMap<String, ClusterConfig>,
    /// The first rule problem (UnsupportedValue message), if any.
    invalid: Option<String>,
    /// The first unresolved backend, if any.
    unresolved: Option<BackendError>,
}

fn check_rules<R: TranslateRule>(s: &Snapshot, route: &Route<R>) -> CheckedRules<R> {
    let ns = &route.meta.namespace;
    let mut out = CheckedRules {
        rules: vec![],
        clusters: BTreeMap::new(),
        invalid: None,
        unresolved: None,
    };
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let filters_ok = rule
            .filters()
            .iter()
            .chain(rule.backend_refs().iter().flat_map(|b| b.filters.iter()))
            .find(|f| !R::FILTERS.contains(&f.kind.as_str()));
        if let Some(f) = filters_ok {
            out.invalid
                .get_or_insert(format!("rule {i}: filter {:?} is not supported", f.kind));
            continue;
        }
        if let Err(e) = rule.validate_matches() {
            out.invalid.get_or_insert(format!("rule {i}: {e}"));
            continue;
        }
        let mut backends = vec![];
        for b in rule.backend_refs() {
            let cluster = match resolve_backend::<R>(s, ns, &b.backend) {
                Ok((name, c)) => {
                    out.clusters.insert(name.clone(), c);
                    Some(name)
                }
                Err(e) => {
                    if out.unresolved.is_none() {
                        out.unresolved = Some(e);
                    }
                    None
                }
            };
            backends.push(BackendConfig {
                cluster,
                weight: b.weight,
                filters: b.filters.clone(),
            });
        }
        // Mirror targets must resolve too; an unresolved mirror is dropped, not served.
        let mut filters = vec![];
        for f in rule.filters() {
            if let Some(m) = &f.request_mirror {
                match resolve_backend::<R>(s, ns, &m.backend_ref) {
                    Ok((name, c)) => {
                        out.clusters.insert(name, c);
                    }
                    Err(e) => {
                        if out.unresolved.is_none() {
                            out.unresolved = Some(e);
                        }
                        continue;
                    }
                }
            }
            filters.push(f.clone());
        }
        out.rules.push(RuleConfig {
            matches: rule.config_matches(),
            filters,
            backends,
            timeouts: rule.config_timeouts(),
        });
    }
    out
}

/// Attaches one route to the Gateways of this controller; returns its parent statuses.
pub fn attach<R: TranslateRule>(
    s: &Snapshot,
    route: &Route<R>,
    gateways: &mut BTreeMap<ObjectKey, OwnedGateway<'_>>,
) -> Vec<RouteParentStatus> {
    let checked = check_rules(s, route);
    let g = route.meta.generation;
    let ns = &route.meta.namespace;
    let ns_labels = s.namespace_labels(ns);
    let mut statuses = vec![];
    for parent in &route.spec.parent_refs {
        if !parent.is_gateway() {
            continue;
        }
        let key = ObjectKey::new(
            parent.namespace.clone().unwrap_or_else(|| ns.clone()),
            parent.name.clone(),
        );
        let Some(owned) = gateways.get_mut(&key) else {
            continue;
        };
        let accepted = attach_parent::<R>(route, parent, owned, &key, &ns_labels, &checked);
        let mut conditions = vec![accepted];
        conditions.push(match &checked.unresolved {
            Some(e) => Condition::new("ResolvedRefs", false, e.reason(), e.to_string(), g),
            None => Condition::new(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "All references resolved",
                g,
            ),
        });
        if let (Some(msg), false) = (&checked.invalid, checked.rules.is_empty()) {
            conditions.push(Condition::new(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                msg.clone(),
                g,
            ));
        }
        statuses.push(RouteParentStatus {
            parent_ref: parent.clone(),
            conditions,
        });
    }
    statuses
}

fn attach_parent<R: TranslateRule>(
    route: &Route<R>,
    parent: &ParentRef,
    owned: &mut OwnedGateway<'_>,
    gateway: &ObjectKey,
    ns_labels: &BTreeMap<String, String>,
    checked: &CheckedRules<R>,
) -> Condition {
    let g = route.meta.generation;
    let no = |reason: &str, msg: String| Condition::new("Accepted", false, reason, msg, g);
    let candidates: Vec<usize> = owned
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|n| *n == l.listener.name)
                && parent.port.is_none_or(|p| p == l.listener.port)
        })
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return no(
            "NoMatchingParent",
            format!("Gateway {gateway} has no listener matching this parentRef"),
        );
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            let l = &owned.listeners[i];
            let kind_ok = l
                .kinds
                .iter()
                .any(|k| k.group == GATEWAY_GROUP && k.kind == R::KIND);
            let ns = &l.listener.allowed_routes.namespaces;
            let ns_ok = match ns.from.as_str() {
                "All" => true,
                "Same" => route.meta.namespace == gateway.namespace,
                "Selector" => ns
                    .selector
                    .as_ref()
                    .is_some_and(|sel| sel.matches(ns_labels)),
                _ => false,
            };
            l.accepted && kind_ok && ns_ok
        })
        .collect();
    if allowed.is_empty() {
        return no(
            "NotAllowedByListeners",
            format!("no listener of {gateway} allows this {} here", R::KIND),
        );
    }
    let matched: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .filter_map(|i| {
            refs::intersect_hostnames(
                owned.listeners[i].listener.hostname.as_deref(),
                &route.spec.hostnames,
            )
            .map(|h| (i, h))
        })
        .collect();
    if matched.is_empty() {
        return no(
            "NoMatchingListenerHostname",
            "no listener hostname matches the route's hostnames".into(),
        );
    }
    if checked.rules.is_empty() && checked.invalid.is_some() {
        return no(
            "UnsupportedValue",
            checked.invalid.clone().unwrap_or_default(),
        );
    }
    let name = route.meta.key().to_string();
    for (i, hostnames) in matched {
        owned.attached[i] += 1;
        let info = &owned.listeners[i];
        if !info.programmed {
            continue;
        }
        let listener_name = info.listener.name.clone();
        if let Some(lc) = owned
            .config
            .listeners
            .iter_mut()
            .find(|l| l.name == listener_name)
        {
            R::push(
                lc,
                RouteConfig {
                    name: name.clone(),
                    hostnames,
                    rules: checked.rules.clone(),
                },
            );
        }
        owned.config.clusters.extend(checked.clusters.clone());
    }
    Condition::new("Accepted", true, "Accepted", "Route is accepted", g)
}
