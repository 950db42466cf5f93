//! Builds the data plane's config types (`pylon_config`, the contract shared with the data
//! plane) from the model, and resolves backend endpoints from EndpointSlices.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pylon_config as dp;
use serde::Serialize;

use crate::model::core::EndpointSlice;
use crate::model::route::{
    Filter, FilterKind, GrpcMatch, HttpMatch, HttpTimeouts, NameValueMatch, PathMatchKind,
    PathModifier, PathModifierKind, ValueMatchKind,
};
use crate::snapshot::Snapshot;
use crate::translate::rule_error::RuleError;

/// A backend Service port, as translation resolved it (endpoints are looked up separately).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Service port.
    pub port: i32,
    /// Upstream protocol.
    pub protocol: dp::BackendProtocol,
    /// TLS to the backend (from a valid BackendTLSPolicy).
    pub tls: Option<dp::BackendTls>,
    /// The BackendTLSPolicy that applies, valid or not.
    pub policy: Option<crate::model::ObjectKey>,
    /// BackendTLSPolicies that lost to `policy` (same target, same specificity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicted: Vec<crate::model::ObjectKey>,
    /// Why the applicable policy is invalid: the backend must then not be used in plain text.
    pub tls_error: Option<String>,
    /// The Service's connect timeout (its annotation), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<dp::Duration>,
}

/// Endpoints per backend name.
pub type Endpoints = BTreeMap<String, Vec<dp::Endpoint>>;

/// The backend name of a Service port.
pub fn cluster_name(namespace: &str, service: &str, port: i32) -> String {
    format!("{namespace}/{service}:{port}")
}

/// The EndpointSlices of each Service, found once per translation: scanning every slice per
/// backend made resolving quadratic (5,000 routes with a Service each: 25 million comparisons).
pub struct SliceIndex<'a> {
    s: &'a Snapshot,
    slices: std::collections::HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> SliceIndex<'a> {
    /// Indexes the snapshot's slices by the Service they belong to.
    pub fn new(s: &'a Snapshot) -> Self {
        let mut slices: std::collections::HashMap<_, Vec<_>> = Default::default();
        for e in s.endpoint_slices.values() {
            slices
                .entry((e.meta.namespace.as_str(), e.service_name.as_str()))
                .or_default()
                .push(&**e);
        }
        SliceIndex { s, slices }
    }

    /// The endpoints of one cluster (not-ready ones included, with their state, so the data
    /// plane can prefer ready ones and fall back to terminating ones that still serve), sorted
    /// and without duplicates.
    pub fn endpoints(&self, c: &ClusterConfig) -> Vec<dp::Endpoint> {
        let key = crate::model::ObjectKey::new(c.namespace.clone(), c.service.clone());
        let port_name = self
            .s
            .services
            .get(&key)
            .and_then(|svc| svc.ports.iter().find(|p| p.port == c.port))
            .map(|p| p.name.as_str())
            .unwrap_or_default();
        let mut eps: Vec<dp::Endpoint> = self
            .slices
            .get(&(c.namespace.as_str(), c.service.as_str()))
            .into_iter()
            .flatten()
            .flat_map(|e| {
                let target = e.ports.iter().find(|p| p.name == port_name).map(|p| p.port);
                e.endpoints.iter().flat_map(move |ep| {
                    ep.addresses.iter().filter_map(move |a| {
                        let port = u16::try_from(target?).ok()?;
                        let ip: std::net::IpAddr = a.parse().ok()?;
                        Some(dp::Endpoint {
                            address: SocketAddr::new(ip, port),
                            state: ep.state,
                        })
                    })
                })
            })
            .collect();
        eps.sort_by_key(|e| e.address);
        eps.dedup_by_key(|e| e.address);
        eps
    }
}

/// Resolves the endpoints of every cluster from the EndpointSlices.
pub fn resolve_endpoints(s: &Snapshot, clusters: &BTreeMap<String, ClusterConfig>) -> Endpoints {
    let index = SliceIndex::new(s);
    clusters
        .iter()
        .map(|(name, c)| (name.clone(), index.endpoints(c)))
        .collect()
}

/// Fills `config.backends` from the clusters and their endpoints.
pub fn with_backends(
    mut config: dp::Config,
    clusters: &BTreeMap<String, ClusterConfig>,
    endpoints: &Endpoints,
) -> dp::Config {
    config.backends = clusters
        .iter()
        .map(|(name, c)| {
            let backend = dp::Backend {
                protocol: c.protocol,
                endpoints: endpoints.get(name).cloned().unwrap_or_default(),
                tls: c.tls.clone(),
                connect_timeout: c.connect_timeout,
            };
            (name.clone(), backend)
        })
        .collect();
    config
}

fn name_match(m: &NameValueMatch) -> dp::NameMatch {
    dp::NameMatch {
        match_type: match_type(&m.kind),
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// An unknown match type never gets here: `validate_matches` refuses the rule first.
fn match_type(kind: &ValueMatchKind) -> dp::MatchType {
    match kind {
        ValueMatchKind::RegularExpression => dp::MatchType::RegularExpression,
        ValueMatchKind::Exact | ValueMatchKind::Other(_) => dp::MatchType::Exact,
    }
}

/// An HTTPRoute match in the data plane's terms.
pub fn http_match(m: &HttpMatch) -> dp::RouteMatch {
    let value = m.path.value.clone();
    // An unknown type never gets here: `validate_matches` refuses the rule first.
    let path = match m.path.kind {
        PathMatchKind::Exact => dp::PathMatch::Exact { value },
        PathMatchKind::RegularExpression => dp::PathMatch::RegularExpression { value },
        PathMatchKind::PathPrefix | PathMatchKind::Other(_) => dp::PathMatch::PathPrefix { value },
    };
    dp::RouteMatch {
        path: Some(path),
        method: m.method.clone(),
        headers: m.headers.iter().map(name_match).collect(),
        query_params: m.query_params.iter().map(name_match).collect(),
        grpc: None,
    }
}

/// A GRPCRoute match in the data plane's terms.
pub fn grpc_match(m: &GrpcMatch) -> dp::RouteMatch {
    dp::RouteMatch {
        headers: m.headers.iter().map(name_match).collect(),
        grpc: m.method.as_ref().map(|g| dp::GrpcMethodMatch {
            match_type: match_type(&g.kind),
            service: g.service.clone(),
            method: g.method.clone(),
        }),
        ..Default::default()
    }
}

/// Converts timeouts; unparsable durations are reported as the rule's problem.
pub fn timeouts(t: &HttpTimeouts) -> Result<dp::Timeouts, String> {
    let parse = |v: &Option<String>| -> Result<Option<dp::Duration>, String> {
        v.as_ref()
            .map(|d| {
                d.parse::<dp::Duration>()
                    .map_err(|e| format!("timeout {d:?}: {e}"))
            })
            .transpose()
    };
    Ok(dp::Timeouts {
        request: parse(&t.request)?,
        backend_request: parse(&t.backend_request)?,
    })
}

/// Converts a retry policy.
pub fn retry(r: &crate::model::route::HttpRetry) -> Result<dp::Retry, String> {
    Ok(dp::Retry {
        codes: r
            .codes
            .iter()
            .map(|c| u16::try_from(*c).map_err(|_| format!("retry code {c}")))
            .collect::<Result<_, _>>()?,
        attempts: u32::try_from(r.attempts.unwrap_or(0))
            .map_err(|_| "retry attempts".to_string())?,
        backoff: r
            .backoff
            .as_ref()
            .map(|d| {
                d.parse::<dp::Duration>()
                    .map_err(|e| format!("retry backoff {d:?}: {e}"))
            })
            .transpose()?,
    })
}

fn path_modifier(p: &PathModifier) -> Result<dp::PathModifier, String> {
    match (&p.kind, &p.replace_full_path, &p.replace_prefix_match) {
        (PathModifierKind::ReplaceFullPath, Some(v), _) => {
            Ok(dp::PathModifier::ReplaceFullPath { value: v.clone() })
        }
        (PathModifierKind::ReplacePrefixMatch, _, Some(v)) => {
            Ok(dp::PathModifier::ReplacePrefixMatch { value: v.clone() })
        }
        (kind, ..) => Err(format!("path modifier {:?} lacks its value", kind.as_str())),
    }
}

fn headers(h: &crate::model::route::HeaderModifier) -> dp::HeaderModifier {
    let hv = |v: &crate::model::route::HeaderValue| dp::HeaderValue {
        name: v.name.clone(),
        value: v.value.clone(),
    };
    dp::HeaderModifier {
        set: h.set.iter().map(hv).collect(),
        add: h.add.iter().map(hv).collect(),
        remove: h.remove.clone(),
    }
}

/// Converts a filter; `mirror_backend` is the resolved backend name of a RequestMirror.
pub fn filter(f: &Filter, mirror_backend: Option<String>) -> Result<dp::Filter, RuleError> {
    let missing = || RuleError::MissingSettings(f.kind.clone());
    Ok(match &f.kind {
        FilterKind::RequestHeaderModifier => dp::Filter::RequestHeaderModifier(headers(
            f.request_header_modifier.as_ref().ok_or_else(missing)?,
        )),
        FilterKind::ResponseHeaderModifier => dp::Filter::ResponseHeaderModifier(headers(
            f.response_header_modifier.as_ref().ok_or_else(missing)?,
        )),
        FilterKind::RequestRedirect => {
            let r = f.request_redirect.as_ref().ok_or_else(missing)?;
            dp::Filter::RequestRedirect(dp::Redirect {
                scheme: match r.scheme.as_deref() {
                    None => None,
                    Some("http") => Some(dp::Scheme::Http),
                    Some("https") => Some(dp::Scheme::Https),
                    Some(other) => return Err(format!("redirect scheme {other:?}").into()),
                },
                hostname: r.hostname.clone(),
                port: r
                    .port
                    .map(|p| u16::try_from(p).map_err(|_| format!("redirect port {p}")))
                    .transpose()?,
                path: r.path.as_ref().map(path_modifier).transpose()?,
                status_code: u16::try_from(r.status_code)
                    .map_err(|_| format!("redirect status {}", r.status_code))?,
            })
        }
        FilterKind::UrlRewrite => {
            let r = f.url_rewrite.as_ref().ok_or_else(missing)?;
            dp::Filter::UrlRewrite(dp::UrlRewrite {
                hostname: r.hostname.clone(),
                path: r.path.as_ref().map(path_modifier).transpose()?,
            })
        }
        FilterKind::RequestMirror => {
            let m = f.request_mirror.as_ref().ok_or_else(missing)?;
            let percent = match (&m.fraction, m.percent) {
                (Some(fr), _) if fr.denominator > 0 => {
                    100.0 * f64::from(fr.numerator) / f64::from(fr.denominator)
                }
                (_, Some(p)) => f64::from(p),
                _ => 100.0,
            };
            dp::Filter::RequestMirror(dp::Mirror {
                backend: mirror_backend
                    .ok_or_else(|| RuleError::from("mirror backend did not resolve".to_string()))?,
                percent,
            })
        }
        FilterKind::Cors => {
            let c = f.cors.as_ref().ok_or_else(missing)?;
            dp::Filter::Cors(dp::Cors {
                allow_origins: c.allow_origins.clone(),
                allow_credentials: c.allow_credentials,
                allow_methods: c.allow_methods.clone(),
                allow_headers: c.allow_headers.clone(),
                expose_headers: c.expose_headers.clone(),
                max_age: u32::try_from(c.max_age)
                    .map_err(|_| format!("CORS maxAge {}", c.max_age))?,
            })
        }
        other @ (FilterKind::ExtensionRef | FilterKind::Other(_)) => {
            return Err(RuleError::UnsupportedFilter(other.clone()));
        }
    })
}
