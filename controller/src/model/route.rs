//! HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute: one generic [`Route`] whose rules
//! differ per kind ([`RouteRule`]; the three L4 kinds share [`L4Rule`]).
//!
//! Everything about attaching to parents, hostnames and backend references is shared; only
//! matching differs, and that lives in the rule types.

use serde::{Deserialize, Serialize};

use super::api_enum::api_enum;
use super::{GATEWAY_GROUP, Meta};

api_enum! {
    /// A route filter's `type`.
    pub enum FilterKind {
        /// `RequestHeaderModifier`.
        RequestHeaderModifier = "RequestHeaderModifier",
        /// `ResponseHeaderModifier`.
        ResponseHeaderModifier = "ResponseHeaderModifier",
        /// `RequestRedirect`.
        RequestRedirect = "RequestRedirect",
        /// `URLRewrite`.
        UrlRewrite = "URLRewrite",
        /// `RequestMirror`.
        RequestMirror = "RequestMirror",
        /// `CORS`.
        Cors = "CORS",
        /// `ExtensionRef`.
        ExtensionRef = "ExtensionRef",
    }
}

api_enum! {
    /// A path modifier's `type` (redirects and rewrites).
    pub enum PathModifierKind {
        /// `ReplaceFullPath`.
        ReplaceFullPath = "ReplaceFullPath",
        /// `ReplacePrefixMatch`.
        ReplacePrefixMatch = "ReplacePrefixMatch",
    }
}

api_enum! {
    /// A path match's `type` (CRD default `PathPrefix`).
    pub enum PathMatchKind {
        /// `Exact`.
        Exact = "Exact",
        /// `PathPrefix`.
        PathPrefix = "PathPrefix",
        /// `RegularExpression`.
        RegularExpression = "RegularExpression",
    }
}

api_enum! {
    /// A header, query parameter or gRPC method match's `type` (CRD default `Exact`).
    pub enum ValueMatchKind {
        /// `Exact`.
        Exact = "Exact",
        /// `RegularExpression`.
        RegularExpression = "RegularExpression",
    }
}

/// A route of any kind: its rules are `R`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route<R: RouteRule> {
    /// Metadata.
    pub meta: Meta,
    /// The spec.
    pub spec: RouteSpec<R>,
}

/// The spec shared by all route kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec<R: RouteRule> {
    /// Hostnames; empty means "whatever the listener allows".
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Parents to attach to.
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// Rules, in spec order.
    #[serde(default = "R::default_rules")]
    pub rules: Vec<R>,
}

/// What translation needs from a rule of any route kind.
pub trait RouteRule: Clone + std::fmt::Debug {
    /// The route kind these rules belong to ("HTTPRoute", "GRPCRoute").
    const KIND: &'static str;
    /// Whether route and listener hostnames apply to it (not to TCPRoute and UDPRoute).
    const HOSTNAMES: bool = true;
    /// The rules to use when the spec has none (the CRD default).
    fn default_rules() -> Vec<Self>;
    /// The rule's backend references.
    fn backend_refs(&self) -> &[WeightedBackendRef];
    /// The rule's filters.
    fn filters(&self) -> &[Filter];
    /// Checks the rule's matches; `Err` names what is unsupported.
    fn validate_matches(&self) -> Result<(), String>;
}

/// HTTPRoute.
pub type HttpRoute = Route<HttpRule>;
/// GRPCRoute.
pub type GrpcRoute = Route<GrpcRule>;
/// TLSRoute.
pub type TlsRoute = Route<TlsRule>;
/// TCPRoute.
pub type TcpRoute = Route<TcpRule>;
/// UDPRoute.
pub type UdpRoute = Route<UdpRule>;

/// A reference from a route to its parent (Gateway by default).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// API group (default gateway.networking.k8s.io).
    #[serde(default = "super::gateway::default_gateway_group")]
    pub group: String,
    /// Kind (default Gateway).
    #[serde(default = "default_parent_kind")]
    pub kind: String,
    /// Namespace; `None` means the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

fn default_parent_kind() -> String {
    "Gateway".into()
}

impl ParentRef {
    /// Whether this refers to a Gateway.
    pub fn is_gateway(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == "Gateway"
    }

    /// Whether this refers to a ListenerSet.
    pub fn is_listener_set(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == "ListenerSet"
    }
}

/// A reference to a backend (a Service by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRef {
    /// API group ("" = core).
    #[serde(default)]
    pub group: String,
    /// Kind (default Service).
    #[serde(default = "default_backend_kind")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; `None` means the route's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Port (required for Services).
    #[serde(default)]
    pub port: Option<i32>,
}

fn default_backend_kind() -> String {
    "Service".into()
}

/// A backend reference with a weight and per-backend filters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightedBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend: BackendRef,
    /// Weight (CRD default 1).
    #[serde(default = "default_weight")]
    pub weight: i32,
    /// Filters applied when this backend is chosen.
    #[serde(default)]
    pub filters: Vec<Filter>,
}

fn default_weight() -> i32 {
    1
}

/// A route filter (HTTPRoute and GRPCRoute share the shape; GRPCRoute allows a subset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Filter type.
    #[serde(rename = "type")]
    pub kind: FilterKind,
    /// RequestHeaderModifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// ResponseHeaderModifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// RequestRedirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// URLRewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// RequestMirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

/// The CORS filter's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Allowed origins.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Allowed methods.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Preflight cache seconds (CRD default 5).
    #[serde(default = "default_max_age")]
    pub max_age: i32,
}

fn default_max_age() -> i32 {
    5
}

/// Header additions, replacements and removals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderModifier {
    /// Headers to set (replace).
    #[serde(default)]
    pub set: Vec<HeaderValue>,
    /// Headers to add (append).
    #[serde(default)]
    pub add: Vec<HeaderValue>,
    /// Header names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A path modification for redirects and rewrites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// ReplaceFullPath or ReplacePrefixMatch.
    #[serde(rename = "type")]
    pub kind: PathModifierKind,
    /// For ReplaceFullPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// For ReplacePrefixMatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// `requestRedirect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// http or https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path modification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Status code (CRD default 302).
    #[serde(default = "default_redirect_code")]
    pub status_code: i64,
}

fn default_redirect_code() -> i64 {
    302
}

/// `urlRewrite`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UrlRewrite {
    /// Hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path modification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// `requestMirror`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where to mirror to.
    pub backend_ref: BackendRef,
    /// Percent of requests (0-100), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Fraction of requests, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

/// A fraction numerator/denominator (CRD default denominator 100).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fraction {
    /// Numerator.
    pub numerator: i32,
    /// Denominator.
    #[serde(default = "default_denominator")]
    pub denominator: i32,
}

fn default_denominator() -> i32 {
    100
}

/// A string match: Exact (CRD default) or RegularExpression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NameValueMatch {
    /// Exact or RegularExpression.
    #[serde(default = "default_exact", rename = "type")]
    pub kind: ValueMatchKind,
    /// Header or query parameter name.
    pub name: String,
    /// Value.
    pub value: String,
}

fn default_exact() -> ValueMatchKind {
    ValueMatchKind::Exact
}

/// An HTTPRoute rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches (CRD default: one match, path prefix "/").
    #[serde(default = "default_http_matches")]
    pub matches: Vec<HttpMatch>,
    /// Filters.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Backends.
    #[serde(default)]
    pub backend_refs: Vec<WeightedBackendRef>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpTimeouts>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRetry>,
}

/// `rules[].retry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpRetry {
    /// Retries after the first attempt.
    #[serde(default)]
    pub attempts: Option<i64>,
    /// Delay between attempts (Gateway API duration).
    #[serde(default)]
    pub backoff: Option<String>,
    /// HTTP statuses that trigger a retry.
    #[serde(default)]
    pub codes: Vec<i64>,
}

/// `rules[].timeouts` (Gateway API durations, e.g. "10s").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTimeouts {
    /// Whole-request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Per backend attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

fn default_http_matches() -> Vec<HttpMatch> {
    vec![HttpMatch::default()]
}

/// One HTTPRoute match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Path match (CRD default PathPrefix "/").
    #[serde(default)]
    pub path: PathMatch,
    /// Header matches.
    #[serde(default)]
    pub headers: Vec<NameValueMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: Vec<NameValueMatch>,
    /// Method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A path match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathMatch {
    /// Exact, PathPrefix (CRD default) or RegularExpression.
    #[serde(default = "default_path_type", rename = "type")]
    pub kind: PathMatchKind,
    /// Value (CRD default "/").
    #[serde(default = "default_path_value")]
    pub value: String,
}

impl Default for PathMatch {
    fn default() -> Self {
        Self {
            kind: default_path_type(),
            value: default_path_value(),
        }
    }
}

fn default_path_type() -> PathMatchKind {
    PathMatchKind::PathPrefix
}

fn default_path_value() -> String {
    "/".into()
}

impl RouteRule for HttpRule {
    const KIND: &'static str = "HTTPRoute";

    fn default_rules() -> Vec<Self> {
        vec![HttpRule {
            name: None,
            matches: default_http_matches(),
            filters: vec![],
            backend_refs: vec![],
            timeouts: None,
            retry: None,
        }]
    }

    fn backend_refs(&self) -> &[WeightedBackendRef] {
        &self.backend_refs
    }

    fn filters(&self) -> &[Filter] {
        &self.filters
    }

    fn validate_matches(&self) -> Result<(), String> {
        for m in &self.matches {
            match &m.path.kind {
                PathMatchKind::Exact | PathMatchKind::PathPrefix => {
                    if !m.path.value.starts_with('/') {
                        return Err(format!("path {:?} must start with '/'", m.path.value));
                    }
                }
                PathMatchKind::RegularExpression => {
                    regex::Regex::new(&m.path.value)
                        .map_err(|e| format!("path regular expression {:?}: {e}", m.path.value))?;
                }
                PathMatchKind::Other(other) => {
                    return Err(format!("path match type {other:?} is not supported"));
                }
            }
            for h in m.headers.iter().chain(&m.query_params) {
                validate_value_match(h)?;
            }
        }
        Ok(())
    }
}

fn validate_value_match(m: &NameValueMatch) -> Result<(), String> {
    match &m.kind {
        ValueMatchKind::Exact => Ok(()),
        ValueMatchKind::RegularExpression => regex::Regex::new(&m.value)
            .map(|_| ())
            .map_err(|e| format!("regular expression {:?} for {:?}: {e}", m.value, m.name)),
        ValueMatchKind::Other(other) => Err(format!(
            "match type {other:?} for {:?} is not supported",
            m.name
        )),
    }
}

/// A GRPCRoute rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches; empty matches all gRPC requests.
    #[serde(default)]
    pub matches: Vec<GrpcMatch>,
    /// Filters.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Backends.
    #[serde(default)]
    pub backend_refs: Vec<WeightedBackendRef>,
}

/// One GRPCRoute match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpcMatch {
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header matches.
    #[serde(default)]
    pub headers: Vec<NameValueMatch>,
}

/// A gRPC service/method match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpcMethodMatch {
    /// Exact (CRD default) or RegularExpression.
    #[serde(default = "default_exact", rename = "type")]
    pub kind: ValueMatchKind,
    /// Service (fully qualified), if matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method, if matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl RouteRule for GrpcRule {
    const KIND: &'static str = "GRPCRoute";

    fn default_rules() -> Vec<Self> {
        vec![]
    }

    fn backend_refs(&self) -> &[WeightedBackendRef] {
        &self.backend_refs
    }

    fn filters(&self) -> &[Filter] {
        &self.filters
    }

    fn validate_matches(&self) -> Result<(), String> {
        for m in &self.matches {
            if let Some(method) = &m.method {
                if method.service.is_none() && method.method.is_none() {
                    return Err("a method match needs a service or a method".into());
                }
                match &method.kind {
                    ValueMatchKind::Exact => {}
                    ValueMatchKind::RegularExpression => {
                        for v in method.service.iter().chain(&method.method) {
                            regex::Regex::new(v)
                                .map_err(|e| format!("regular expression {v:?}: {e}"))?;
                        }
                    }
                    ValueMatchKind::Other(other) => {
                        return Err(format!("method match type {other:?} is not supported"));
                    }
                }
            }
            for h in &m.headers {
                validate_value_match(h)?;
            }
        }
        Ok(())
    }
}

/// The kinds whose listeners relay bytes, not requests (TLSRoute, TCPRoute, UDPRoute): their
/// one rule holds only backends.
pub trait L4Kind: Clone + Copy + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The route kind ("TLSRoute").
    const KIND: &'static str;
    /// Whether route and listener hostnames apply (TLS: the SNI name; TCP and UDP have none).
    const HOSTNAMES: bool;
}

/// TLSRoute's [`L4Kind`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TlsKind;
impl L4Kind for TlsKind {
    const KIND: &'static str = "TLSRoute";
    const HOSTNAMES: bool = true;
}

/// TCPRoute's [`L4Kind`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TcpKind;
impl L4Kind for TcpKind {
    const KIND: &'static str = "TCPRoute";
    const HOSTNAMES: bool = false;
}

/// UDPRoute's [`L4Kind`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UdpKind;
impl L4Kind for UdpKind {
    const KIND: &'static str = "UDPRoute";
    const HOSTNAMES: bool = false;
}

/// A rule of an [`L4Kind`] route: only backends (its listener relays the connection's bytes,
/// so there is no request to match or filter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound = "")]
pub struct L4Rule<K: L4Kind> {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Backends.
    #[serde(default)]
    pub backend_refs: Vec<WeightedBackendRef>,
    #[serde(skip)]
    kind: std::marker::PhantomData<K>,
}

/// A TLSRoute rule.
pub type TlsRule = L4Rule<TlsKind>;
/// A TCPRoute rule.
pub type TcpRule = L4Rule<TcpKind>;
/// A UDPRoute rule.
pub type UdpRule = L4Rule<UdpKind>;

impl<K: L4Kind> RouteRule for L4Rule<K> {
    const KIND: &'static str = K::KIND;
    const HOSTNAMES: bool = K::HOSTNAMES;

    fn default_rules() -> Vec<Self> {
        // The CRDs require at least one rule.
        vec![]
    }

    fn backend_refs(&self) -> &[WeightedBackendRef] {
        &self.backend_refs
    }

    fn filters(&self) -> &[Filter] {
        &[]
    }

    fn validate_matches(&self) -> Result<(), String> {
        Ok(())
    }
}
