//! Route attachment, shared by every route kind: parentRefs → listeners, hostnames, backendRefs.

use std::collections::BTreeMap;

use crate::model::route::{
    BackendRef, FilterKind, GrpcRule, HttpRule, L4Kind, L4Rule, ParentRef, Route, RouteRule,
    TcpKind, TlsKind, UdpKind,
};
use crate::model::{GATEWAY_GROUP, ObjectKey};
use crate::snapshot::Snapshot;

use pylon_config as dp;

use super::config::{self, ClusterConfig, cluster_name};
use super::gateway::{ListenerInfo, Owner};
use super::output::{Condition, RouteParentStatus};
use super::refs::{self, Reference};
use crate::translate::reason::{ConditionType, Reason};
use crate::translate::rule_error::RuleError;

/// Per-kind glue between a rule and the data-plane config.
pub trait TranslateRule: RouteRule {
    /// The data plane's name for this kind.
    const DP_KIND: dp::RouteKind;
    /// Filter types this kind supports.
    const FILTERS: &'static [FilterKind];
    /// Upstream protocol for this kind when the Service port does not say.
    const DEFAULT_UPSTREAM: dp::BackendProtocol;
    /// The rule's matches in the data plane's terms.
    fn config_matches(&self) -> Vec<dp::RouteMatch>;
    /// The rule's timeouts.
    fn config_timeouts(&self) -> Option<&crate::model::route::HttpTimeouts>;
    /// The rule's name.
    fn rule_name(&self) -> Option<String>;
    /// The rule's retry policy.
    fn config_retry(&self) -> Result<Option<dp::Retry>, String> {
        Ok(None)
    }
}

impl TranslateRule for HttpRule {
    const DP_KIND: dp::RouteKind = dp::RouteKind::Http;
    const FILTERS: &'static [FilterKind] = &[
        FilterKind::RequestHeaderModifier,
        FilterKind::ResponseHeaderModifier,
        FilterKind::RequestRedirect,
        FilterKind::UrlRewrite,
        FilterKind::RequestMirror,
        FilterKind::Cors,
    ];
    const DEFAULT_UPSTREAM: dp::BackendProtocol = dp::BackendProtocol::Http1;
    fn config_matches(&self) -> Vec<dp::RouteMatch> {
        self.matches.iter().map(config::http_match).collect()
    }
    fn config_timeouts(&self) -> Option<&crate::model::route::HttpTimeouts> {
        self.timeouts.as_ref()
    }
    fn config_retry(&self) -> Result<Option<dp::Retry>, String> {
        self.retry.as_ref().map(config::retry).transpose()
    }
    fn rule_name(&self) -> Option<String> {
        self.name.clone()
    }
}

impl TranslateRule for GrpcRule {
    const DP_KIND: dp::RouteKind = dp::RouteKind::Grpc;
    const FILTERS: &'static [FilterKind] = &[
        FilterKind::RequestHeaderModifier,
        FilterKind::ResponseHeaderModifier,
        FilterKind::RequestMirror,
    ];
    const DEFAULT_UPSTREAM: dp::BackendProtocol = dp::BackendProtocol::H2c;
    fn config_matches(&self) -> Vec<dp::RouteMatch> {
        self.matches.iter().map(config::grpc_match).collect()
    }
    fn config_timeouts(&self) -> Option<&crate::model::route::HttpTimeouts> {
        None
    }
    fn rule_name(&self) -> Option<String> {
        self.name.clone()
    }
}

/// The data plane's kind for an [`L4Kind`] (the model stays below the config contract).
pub trait L4DpKind: L4Kind {
    /// The data plane's name for this kind.
    const DP_KIND: dp::RouteKind;
}
impl L4DpKind for TlsKind {
    const DP_KIND: dp::RouteKind = dp::RouteKind::Tls;
}
impl L4DpKind for TcpKind {
    const DP_KIND: dp::RouteKind = dp::RouteKind::Tcp;
}
impl L4DpKind for UdpKind {
    const DP_KIND: dp::RouteKind = dp::RouteKind::Udp;
}

impl<K: L4DpKind> TranslateRule for L4Rule<K> {
    const DP_KIND: dp::RouteKind = K::DP_KIND;
    const FILTERS: &'static [FilterKind] = &[];
    // Unused: an L4 listener relays bytes whatever the Service port says.
    const DEFAULT_UPSTREAM: dp::BackendProtocol = dp::BackendProtocol::Http1;
    fn config_matches(&self) -> Vec<dp::RouteMatch> {
        vec![]
    }
    fn config_timeouts(&self) -> Option<&crate::model::route::HttpTimeouts> {
        None
    }
    fn rule_name(&self) -> Option<String> {
        self.name.clone()
    }
}

/// A Gateway of this controller with its validated listeners.
pub struct OwnedGateway<'a> {
    /// Listener validation results, in spec order.
    pub listeners: Vec<ListenerInfo<'a>>,
    /// Routes accepted per listener index.
    pub attached: Vec<i32>,
    /// The config being built (backends are filled in at the end).
    pub config: dp::Config,
    /// Backends the attached routes use.
    pub clusters: BTreeMap<String, ClusterConfig>,
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
    /// A Pylon annotation of the Service has a value Pylon does not accept.
    #[error("backendRef {0}: {1}")]
    InvalidAnnotation(String, crate::model::core::InvalidAnnotation),
}

impl BackendError {
    /// The ResolvedRefs reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidKind(_) => Reason::InvalidKind,
            Self::RefNotPermitted(_) => Reason::RefNotPermitted,
            Self::NotFound(..) => Reason::BackendNotFound,
            Self::UnsupportedProtocol(..) => Reason::UnsupportedProtocol,
            Self::InvalidAnnotation(..) => Reason::InvalidServiceAnnotation,
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
    // IANA service names are case-insensitive ("HTTPS" in the conformance manifests). For
    // "https" the TLS itself comes from the Service's BackendTLSPolicy, so the protocol spoken
    // inside it is the route kind's default.
    let app_protocol = sp.app_protocol.as_deref().map(str::to_ascii_lowercase);
    let protocol = match app_protocol.as_deref() {
        None | Some("http") | Some("https") => R::DEFAULT_UPSTREAM,
        Some("kubernetes.io/h2c") => dp::BackendProtocol::H2c,
        Some("kubernetes.io/ws") => dp::BackendProtocol::Ws,
        Some(other) => return Err(BackendError::UnsupportedProtocol(shown, other.into())),
    };
    let connect_timeout = svc
        .connect_timeout
        .clone()
        .transpose()
        .map_err(|e| BackendError::InvalidAnnotation(shown.clone(), e))?;
    let choice = super::backend_tls::policy_for(s, &ns, &b.name, &sp.name);
    let policy = choice.winner;
    let (tls, tls_error) = match policy.map(|p| super::backend_tls::evaluate(s, p)) {
        None => (None, None),
        Some(Ok(tls)) => (Some(tls), None),
        Some(Err(e)) => (None, Some(e.to_string())),
    };
    let cluster = ClusterConfig {
        namespace: ns.clone(),
        service: b.name.clone(),
        port,
        protocol,
        tls,
        policy: policy.map(|p| p.meta.key()),
        conflicted: choice.conflicted.iter().map(|p| p.meta.key()).collect(),
        tls_error,
        connect_timeout,
    };
    Ok((cluster_name(&ns, &b.name, port), cluster))
}

/// Rules of a route checked once (independent of the parent).
struct CheckedRules {
    /// Valid rules as config (backends resolved).
    rules: Vec<dp::Rule>,
    /// Clusters the valid rules use.
    clusters: BTreeMap<String, ClusterConfig>,
    /// The first rule's problem, with that rule's index, if any.
    invalid: Option<(usize, RuleError)>,
    /// The first unresolved backend, if any.
    unresolved: Option<BackendError>,
}

impl CheckedRules {
    /// Resolves a backend, recording the cluster or the first failure.
    fn backend<R: TranslateRule>(
        &mut self,
        s: &Snapshot,
        ns: &str,
        b: &BackendRef,
    ) -> Result<String, Reason> {
        match resolve_backend::<R>(s, ns, b) {
            Ok((name, c)) if c.tls_error.is_some() => {
                // The policy's status reports why; the backend must not be used in plain text,
                // so its share of requests fails (the reference itself resolved).
                self.clusters.insert(name, c);
                Err(Reason::InvalidBackendTLSPolicy)
            }
            Ok((name, c)) => {
                self.clusters.insert(name.clone(), c);
                Ok(name)
            }
            Err(e) => {
                let reason = e.reason();
                self.unresolved.get_or_insert(e);
                Err(reason)
            }
        }
    }

    /// Converts filters; an unresolved mirror is dropped (reported through ResolvedRefs).
    fn filters<R: TranslateRule>(
        &mut self,
        s: &Snapshot,
        ns: &str,
        filters: &[crate::model::route::Filter],
    ) -> Result<Vec<dp::Filter>, RuleError> {
        let mut out = vec![];
        for f in filters {
            if !R::FILTERS.contains(&f.kind) {
                return Err(RuleError::UnsupportedFilter(f.kind.clone()));
            }
            let mirror = match &f.request_mirror {
                Some(m) => match self.backend::<R>(s, ns, &m.backend_ref) {
                    Ok(name) => Some(name),
                    Err(_) => continue,
                },
                None => None,
            };
            out.push(config::filter(f, mirror)?);
        }
        Ok(out)
    }

    fn rule<R: TranslateRule>(
        &mut self,
        s: &Snapshot,
        ns: &str,
        rule: &R,
    ) -> Result<dp::Rule, RuleError> {
        rule.validate_matches()?;
        let filters = self.filters::<R>(s, ns, rule.filters())?;
        let timeouts = rule.config_timeouts().map(config::timeouts).transpose()?;
        let mut backend_refs = vec![];
        for b in rule.backend_refs() {
            let weight = u32::try_from(b.weight).unwrap_or(0);
            let filters = self.filters::<R>(s, ns, &b.filters)?;
            backend_refs.push(match self.backend::<R>(s, ns, &b.backend) {
                Ok(name) => dp::BackendRef::Backend(dp::BackendTarget {
                    name,
                    weight,
                    filters,
                }),
                Err(reason) => dp::BackendRef::Invalid(dp::InvalidBackend {
                    weight,
                    reason: reason.as_str().into(),
                }),
            });
        }
        let rule = dp::Rule {
            name: rule.rule_name(),
            matches: rule.config_matches(),
            filters,
            backend_refs,
            timeouts,
            retry: rule.config_retry()?,
        };
        self.data_plane_accepts::<R>(&rule)?;
        Ok(rule)
    }

    /// Runs the data plane's own validation on this rule alone, so a rule the data plane would
    /// reject is dropped here (UnsupportedValue) instead of making it reject the whole config.
    fn data_plane_accepts<R: TranslateRule>(&self, rule: &dp::Rule) -> Result<(), RuleError> {
        let problems =
            dp::validate_rule(R::DP_KIND, rule, &|name| self.clusters.contains_key(name));
        if problems.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Err(RuleError::DataPlane(shown.join("; ")))
    }
}

fn check_rules<R: TranslateRule>(s: &Snapshot, route: &Route<R>) -> CheckedRules {
    let ns = &route.meta.namespace;
    let mut out = CheckedRules {
        rules: vec![],
        clusters: BTreeMap::new(),
        invalid: None,
        unresolved: None,
    };
    for (i, rule) in route.spec.rules.iter().enumerate() {
        // A rule is checked on a scratch copy so a rejected rule leaves no clusters behind.
        let mut scratch = CheckedRules {
            rules: vec![],
            clusters: BTreeMap::new(),
            invalid: None,
            unresolved: None,
        };
        match scratch.rule::<R>(s, ns, rule) {
            Ok(r) => {
                out.rules.push(r);
                out.clusters.extend(scratch.clusters);
                if out.unresolved.is_none() {
                    out.unresolved = scratch.unresolved;
                }
            }
            Err(e) => {
                out.invalid.get_or_insert((i, e));
            }
        }
    }
    out
}

/// What one route contributes to a translation: its parent statuses, its entries on the
/// listeners of this controller's Gateways and the backends those use. Computed from the
/// snapshot and the Gateways' validated listeners without changing them ([`attach`]), then
/// [`Attachment::place`]d; so an unchanged route's attachment can be kept from one translation
/// to the next ([`super::incremental`]).
#[derive(Debug, Default, PartialEq)]
pub struct Attachment {
    /// This controller's parent statuses of the route.
    pub statuses: super::output::ParentStatuses,
    /// Where the route attached.
    pub placements: Vec<Placement>,
    /// Backends the route's valid rules use (added to every Gateway it serves on).
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// One listener a route attached to.
#[derive(Debug, PartialEq)]
pub struct Placement {
    /// The Gateway.
    pub gateway: ObjectKey,
    /// The listener's index in the Gateway's validated listeners.
    pub listener: usize,
    /// The route's entry in the data-plane config, when that listener is programmed.
    pub entry: Option<std::sync::Arc<dp::Route>>,
}

impl Attachment {
    /// Counts the route on its listeners and adds its entries and backends to the Gateways'
    /// configs.
    pub fn place(&self, gateways: &mut BTreeMap<ObjectKey, OwnedGateway<'_>>) {
        let mut last: Option<&ObjectKey> = None;
        for p in &self.placements {
            let Some(owned) = gateways.get_mut(&p.gateway) else {
                continue;
            };
            owned.attached[p.listener] += 1;
            // On a listener that is not programmed the route counts, but serves nothing.
            let Some(entry) = &p.entry else {
                continue;
            };
            let name = owned.listeners[p.listener].config_name();
            if let Some(lc) = owned.config.listeners.iter_mut().find(|l| l.name == name) {
                lc.routes.push(entry.clone());
            }
            if last != Some(&p.gateway) {
                owned
                    .clusters
                    .extend(self.clusters.iter().map(|(k, v)| (k.clone(), v.clone())));
                last = Some(&p.gateway);
            }
        }
    }
}

/// The Services a route's rules name (backendRefs and mirrors; other kinds too, harmlessly):
/// with the namespaces they are in, everything of a route's attachment that is not the route
/// itself, the Gateways' listeners or cluster-wide.
pub fn backend_targets<R: RouteRule>(route: &Route<R>) -> Vec<ObjectKey> {
    let ns = &route.meta.namespace;
    let key = |b: &BackendRef| {
        ObjectKey::new(
            b.namespace.clone().unwrap_or_else(|| ns.clone()),
            b.name.clone(),
        )
    };
    let mirrors = |filters: &[crate::model::route::Filter]| -> Vec<ObjectKey> {
        filters
            .iter()
            .filter_map(|f| f.request_mirror.as_ref().map(|m| key(&m.backend_ref)))
            .collect()
    };
    let mut out = vec![];
    for rule in &route.spec.rules {
        out.extend(mirrors(rule.filters()));
        for b in rule.backend_refs() {
            out.push(key(&b.backend));
            out.extend(mirrors(&b.filters));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Attaches one route to the Gateways of this controller: its parent statuses and where it
/// goes ([`Attachment::place`] puts it there).
pub fn attach<R: TranslateRule>(
    s: &Snapshot,
    route: &Route<R>,
    gateways: &BTreeMap<ObjectKey, OwnedGateway<'_>>,
) -> Attachment {
    let checked = check_rules(s, route);
    let g = route.meta.generation;
    let ns = &route.meta.namespace;
    let ns_labels = s.namespace_labels(ns);
    let mut out = Attachment::default();
    let mut statuses = vec![];
    for parent in &route.spec.parent_refs {
        let target = ObjectKey::new(
            parent.namespace.clone().unwrap_or_else(|| ns.clone()),
            parent.name.clone(),
        );
        // A Gateway parent means the Gateway's own listeners; a ListenerSet parent, the
        // listeners that set added to its Gateway.
        let (key, owner) = if parent.is_gateway() {
            (target, Owner::Gateway)
        } else if parent.is_listener_set() {
            // Only a set its Gateway admitted has listeners there; others get no status here.
            let Some(gw) = s
                .listener_sets
                .get(&target)
                .and_then(|set| super::listener_set::parent(set))
            else {
                continue;
            };
            let owner = Owner::ListenerSet(target);
            if !gateways
                .get(&gw)
                .is_some_and(|o| o.listeners.iter().any(|l| l.owner == owner))
            {
                continue;
            }
            (gw, owner)
        } else {
            continue;
        };
        let Some(owned) = gateways.get(&key) else {
            continue;
        };
        let accepted = attach_parent::<R>(
            route,
            parent,
            owned,
            &key,
            &owner,
            &ns_labels,
            &checked,
            &mut out.placements,
        );
        let mut conditions = vec![accepted];
        conditions.push(match &checked.unresolved {
            Some(e) => Condition::new(
                ConditionType::ResolvedRefs,
                false,
                e.reason(),
                e.to_string(),
                g,
            ),
            None => Condition::new(
                ConditionType::ResolvedRefs,
                true,
                Reason::ResolvedRefs,
                "All references resolved",
                g,
            ),
        });
        if let (Some((i, e)), false) = (&checked.invalid, checked.rules.is_empty()) {
            conditions.push(Condition::new(
                ConditionType::PartiallyInvalid,
                true,
                e.reason(),
                format!("rule {i}: {e}"),
                g,
            ));
        }
        statuses.push(RouteParentStatus {
            parent_ref: parent.clone(),
            conditions,
        });
    }
    if out.placements.iter().any(|p| p.entry.is_some()) {
        out.clusters = checked.clusters;
    }
    out.statuses = std::sync::Arc::new(statuses);
    out
}

#[allow(clippy::too_many_arguments)]
fn attach_parent<R: TranslateRule>(
    route: &Route<R>,
    parent: &ParentRef,
    owned: &OwnedGateway<'_>,
    gateway: &ObjectKey,
    owner: &Owner,
    ns_labels: &BTreeMap<String, String>,
    checked: &CheckedRules,
    placements: &mut Vec<Placement>,
) -> Condition {
    let g = route.meta.generation;
    let no = |reason: Reason, msg: String| {
        Condition::new(ConditionType::Accepted, false, reason, msg, g)
    };
    let candidates: Vec<usize> = owned
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.owner == *owner
                && parent
                    .section_name
                    .as_ref()
                    .is_none_or(|n| *n == l.listener.name)
                && parent.port.is_none_or(|p| p == l.listener.port)
        })
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return no(
            Reason::NoMatchingParent,
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
                "Same" => route.meta.namespace == l.namespace,
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
            Reason::NotAllowedByListeners,
            format!("no listener of {gateway} allows this {} here", R::KIND),
        );
    }
    let matched: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .filter_map(|i| {
            refs::intersect_hostnames(
                // A TCP or UDP listener's hostname is ignored (nothing names a host).
                owned.listeners[i]
                    .listener
                    .hostname
                    .as_deref()
                    .filter(|_| R::HOSTNAMES),
                &route.spec.hostnames,
            )
            .map(|h| (i, h))
        })
        .collect();
    if matched.is_empty() {
        return no(
            Reason::NoMatchingListenerHostname,
            "no listener hostname matches the route's hostnames".into(),
        );
    }
    if let (true, Some((i, e))) = (checked.rules.is_empty(), &checked.invalid) {
        return no(e.reason(), format!("rule {i}: {e}"));
    }
    for (i, hostnames) in matched {
        let entry = owned.listeners[i].programmed.then(|| {
            std::sync::Arc::new(dp::Route {
                kind: R::DP_KIND,
                namespace: route.meta.namespace.clone(),
                name: route.meta.name.clone(),
                creation_timestamp: route.meta.creation_timestamp.clone(),
                hostnames,
                rules: checked.rules.clone(),
            })
        });
        placements.push(Placement {
            gateway: gateway.clone(),
            listener: i,
            entry,
        });
    }
    Condition::new(
        ConditionType::Accepted,
        true,
        Reason::Accepted,
        "Route is accepted",
        g,
    )
}
