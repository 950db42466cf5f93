//! The contract between Pylon's controller and its data plane: the configuration model, its
//! validation, and the wire protocol that carries it.
//!
//! The controller does the Kubernetes work (hostname intersection, ReferenceGrants, Service →
//! endpoint resolution, CRD defaults) and sends a *resolved* model: listeners with the routes
//! attached to each, and backends by name with their endpoints. The schema is versioned by
//! [`API_VERSION`] and validated on load ([`validate`]), every error naming the field path it is
//! about.
//!
//! A crate of its own so that both sides build the same definitions (what the controller
//! checks before sending is what the data plane checks on load) and the controller does not
//! build the data plane's proxy stack: no async runtime, no HTTP server here.
//!
//! Wire format: JSON or YAML, camelCase field names, unknown fields rejected.

pub mod delta;
pub mod duration;
pub mod host;
pub mod load;
pub mod pem;
pub mod protocol;
pub mod timestamp;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use duration::Duration;
pub use load::{LoadError, load_file, parse_str};
pub use validate::{ValidationError, validate, validate_rule, validate_touched};

/// The only `apiVersion` the data plane understands.
pub const API_VERSION: &str = "pylon.dev/dataplane/v1";

/// One Gateway's complete data-plane configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Listeners; several may share a port (hostname isolation), then they share the protocol.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Backends by name; `backendRefs` and mirrors refer to these names.
    #[serde(default)]
    pub backends: BTreeMap<String, Backend>,
}

/// A Gateway listener with the routes attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Unique within the config (the Gateway's listener name).
    pub name: String,
    pub port: u16,
    pub protocol: ListenerProtocol,
    /// Exact (`foo.example.com`) or wildcard (`*.example.com`); absent = any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Required for HTTPS, forbidden for HTTP; for TLS, present = terminate, absent = passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Routes attached to this listener (already filtered by the controller). Shared (`Arc`):
    /// a config made from another by a delta shares the routes the delta did not change.
    #[serde(default)]
    pub routes: Vec<std::sync::Arc<Route>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ListenerProtocol {
    Http,
    Https,
    /// TLSRoutes: the SNI name of the client's ClientHello picks the listener (most specific
    /// hostname) and a TLSRoute of it; every route is a [`RouteKind::Tls`]. Without `tls` the
    /// listener passes TLS through: the connection's bytes, ClientHello included, are relayed
    /// to the backend unchanged (the backend terminates TLS). With `tls` it terminates: the
    /// data plane completes the handshake with its certificates and relays the decrypted bytes
    /// to the backend in plain TCP. Listeners of both kinds may share a port (SNI decides).
    Tls,
    /// TCPRoutes: each connection is relayed to a backend of the listener's route (the first
    /// in canonical order; one listener per port, no hostname, no `tls`).
    Tcp,
    /// UDPRoutes: each client address is a session relayed to a backend of the listener's
    /// route (as for TCP), ended after an idle timeout.
    Udp,
}

impl ListenerProtocol {
    /// The route kinds that attach to a listener of this protocol.
    pub fn takes(self, kind: RouteKind) -> bool {
        matches!(
            (self, kind),
            (
                ListenerProtocol::Http | ListenerProtocol::Https,
                RouteKind::Http | RouteKind::Grpc
            ) | (ListenerProtocol::Tls, RouteKind::Tls)
                | (ListenerProtocol::Tcp, RouteKind::Tcp)
                | (ListenerProtocol::Udp, RouteKind::Udp)
        )
    }

    /// Whether its connections are relayed as bytes (no HTTP): TLS, TCP and UDP.
    pub fn is_l4(self) -> bool {
        matches!(
            self,
            ListenerProtocol::Tls | ListenerProtocol::Tcp | ListenerProtocol::Udp
        )
    }
}

/// Server certificates of an HTTPS listener or a terminating TLS one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTls {
    /// At least one. The first is the default when SNI matches none.
    pub certificates: Vec<Certificate>,
    /// Client certificate validation (the Gateway's `spec.tls.frontend` for this port); absent =
    /// no client certificate is requested. Listeners sharing a port must agree on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidation>,
}

/// How an HTTPS port validates client certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientValidation {
    /// PEM CA bundle client certificates must chain to.
    pub ca_pem: String,
    #[serde(default)]
    pub mode: ClientValidationMode,
}

/// Whether clients without a valid certificate are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientValidationMode {
    /// Only clients presenting a certificate signed by the CA complete the handshake.
    #[default]
    AllowValidOnly,
    /// A certificate is requested and checked, but clients without one or with an invalid one
    /// are served too (the Gateway reports `InsecureFrontendValidationMode`).
    AllowInsecureFallback,
}

/// A certificate chain and its key, served for the SNI names it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// SNI names (exact or `*.` wildcard) this certificate is served for; empty = the listener's.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

/// Ordered: HTTPRoute before GRPCRoute in a listener's canonical route order (`delta::route_order`);
/// the L4 kinds never share a listener with another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    #[serde(rename = "HTTPRoute")]
    Http,
    #[serde(rename = "GRPCRoute")]
    Grpc,
    /// A TLSRoute on a [`ListenerProtocol::Tls`] listener: `hostnames` are the SNI names it
    /// takes, and its one rule has only `backendRefs` (no matches, filters, timeouts or retry).
    #[serde(rename = "TLSRoute")]
    Tls,
    /// A TCPRoute on a [`ListenerProtocol::Tcp`] listener: no hostnames, one rule of
    /// `backendRefs` only.
    #[serde(rename = "TCPRoute")]
    Tcp,
    /// A UDPRoute on a [`ListenerProtocol::Udp`] listener: as a TCPRoute.
    #[serde(rename = "UDPRoute")]
    Udp,
}

impl RouteKind {
    /// The Gateway API kind, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
        }
    }

    /// Whether it relays bytes (TLS, TCP, UDP): exactly one rule, of `backendRefs` only.
    pub fn is_l4(self) -> bool {
        matches!(self, RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp)
    }
}

/// An HTTPRoute or GRPCRoute as attached to one listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    /// RFC 3339 (`2024-01-02T03:04:05Z`); older routes win precedence ties.
    pub creation_timestamp: String,
    /// Effective hostnames (route ∩ listener); empty = any host the listener accepts.
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Empty = match every request (PathPrefix `/` for HTTP, any method for gRPC).
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Empty (and no redirect filter) = the rule answers 500.
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A request match. `path`, `method` and `queryParams` are for HTTPRoutes, `grpc` for GRPCRoutes
/// (validation enforces it); all present conditions must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NameMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMethodMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum PathMatch {
    Exact { value: String },
    PathPrefix { value: String },
    RegularExpression { value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// A header (name case-insensitive) or query parameter (name exact) match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameMatch {
    #[serde(default, rename = "type")]
    pub match_type: MatchType,
    pub name: String,
    pub value: String,
}

/// GRPCRoute method match; at least one of service and method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethodMatch {
    #[serde(default, rename = "type")]
    pub match_type: MatchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Filters, tagged by `type` with the Gateway API names, the settings beside the tag:
/// `{type: RequestHeaderModifier, set: [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Filter {
    RequestHeaderModifier(HeaderModifier),
    ResponseHeaderModifier(HeaderModifier),
    RequestRedirect(Redirect),
    #[serde(rename = "URLRewrite")]
    UrlRewrite(UrlRewrite),
    RequestMirror(Mirror),
    #[serde(rename = "CORS")]
    Cors(Cors),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default)]
    pub set: Vec<HeaderValue>,
    #[serde(default)]
    pub add: Vec<HeaderValue>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum PathModifier {
    ReplaceFullPath { value: String },
    ReplacePrefixMatch { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Absent = the spec's default-port rules (derived from scheme / listener port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status_code: u16,
}

fn default_redirect_status() -> u16 {
    302
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// A name in `backends`.
    pub backend: String,
    /// Share of requests mirrored, 0–100 (the controller converts `fraction`); default 100.
    #[serde(default = "default_percent")]
    pub percent: f64,
}

fn default_percent() -> f64 {
    100.0
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    /// Origins (`https://a.example`, `https://*.example`, or `*`).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Seconds; default 5 (the spec's).
    #[serde(default = "default_max_age")]
    pub max_age: u32,
}

fn default_max_age() -> u32 {
    5
}

/// A weighted reference from a rule to a backend, or a reference the controller found invalid
/// (its share of requests is answered 500): `{type: Backend, name: web, weight: 1}` or
/// `{type: Invalid, weight: 1, reason: BackendNotFound}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BackendRef {
    Backend(BackendTarget),
    Invalid(InvalidBackend),
}

impl BackendRef {
    pub fn weight(&self) -> u32 {
        match self {
            BackendRef::Backend(b) => b.weight,
            BackendRef::Invalid(i) => i.weight,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTarget {
    /// A name in `backends`.
    pub name: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Per-backend filters (header modifiers, mirror).
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvalidBackend {
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Why the controller rejected it (e.g. `BackendNotFound`), for logs.
    pub reason: String,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Whole request, including retries → 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Duration>,
    /// Each attempt to a backend → 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// HTTP statuses (400–599) that trigger a retry; connection errors always do.
    #[serde(default)]
    pub codes: Vec<u16>,
    /// Retries after the first attempt.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// An upstream: a Service port resolved to endpoints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    #[serde(default)]
    pub protocol: BackendProtocol,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTls>,
    /// How long a connect to one of its endpoints may take before the request moves on to
    /// another endpoint or is answered 503; absent = the data plane's default (1 s). More than
    /// 0 and at most [`MAX_CONNECT_TIMEOUT`]. Written only when set, so configs without it read
    /// the same to a data plane that predates the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
}

/// The longest [`Backend::connect_timeout`]: a connect that takes longer is to a Pod that is
/// gone, and a longer wait only holds the client (a client's patience is a few seconds).
pub const MAX_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a duration cannot be a [`Backend::connect_timeout`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectTimeoutError {
    #[error("must be more than 0")]
    Zero,
    #[error("{0} is more than the maximum of {max}", max = Duration(MAX_CONNECT_TIMEOUT))]
    TooLong(Duration),
}

/// Checks that `d` can be a [`Backend::connect_timeout`] (what validation and the controller
/// both apply).
pub fn check_connect_timeout(d: Duration) -> Result<Duration, ConnectTimeoutError> {
    if d.0.is_zero() {
        Err(ConnectTimeoutError::Zero)
    } else if d.0 > MAX_CONNECT_TIMEOUT {
        Err(ConnectTimeoutError::TooLong(d))
    } else {
        Ok(d)
    }
}

/// From the Service port's appProtocol: `kubernetes.io/h2c` → h2c, `kubernetes.io/ws` → ws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    #[default]
    Http1,
    H2c,
    Ws,
}

/// One endpoint of a backend and whether it takes requests.
///
/// On the wire `{address, ready, serving}` as in Kubernetes' EndpointConditions (`ready`
/// absent = true, `serving` absent = same as `ready`), read into [`EndpointState`] so that a
/// ready endpoint that is not serving cannot be written. `serving` is written only for
/// [`EndpointState::Terminating`], so a config without terminating endpoints reads the same
/// to a data plane that predates the field (one that has it rejects the config: unknown field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EndpointWire", into = "EndpointWire")]
pub struct Endpoint {
    /// `ip:port`.
    pub address: SocketAddr,
    pub state: EndpointState,
}

impl EndpointState {
    /// From Kubernetes' EndpointConditions, each `None` when unset: `ready` unset = true,
    /// `serving` unset = same as `ready`, `terminating` unset = false. Ready wins (a Service
    /// with `publishNotReadyAddresses` marks every endpoint ready); otherwise an endpoint
    /// counts only if it serves *because* it drains, as kube-proxy does.
    pub fn from_conditions(
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> EndpointState {
        let ready = ready.unwrap_or(true);
        let serving = serving.unwrap_or(ready);
        match (ready, serving && terminating.unwrap_or(false)) {
            (true, _) => EndpointState::Ready,
            (false, true) => EndpointState::Terminating,
            (false, false) => EndpointState::NotServing,
        }
    }
}

impl Endpoint {
    /// A ready endpoint at `address`.
    pub fn ready(address: SocketAddr) -> Endpoint {
        Endpoint {
            address,
            state: EndpointState::Ready,
        }
    }
}

/// Whether an endpoint takes requests (kube-proxy's ProxyTerminatingEndpoints rule): ready
/// ones do; only when a backend has none, serving terminating ones do, so that a backend of
/// one Pod under a rolling update is not 503 while the old Pod drains; the others never do.
///
/// Serde: the controller's model keeps it too; on the wire it is [`Endpoint`]'s conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EndpointState {
    /// Ready (serving and not terminating).
    #[default]
    Ready,
    /// Terminating but still serving (its Pod drains): used only if no endpoint is ready.
    Terminating,
    /// Neither: not ready, not serving (or terminating and no longer serving).
    NotServing,
}

/// [`Endpoint`] as written.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointWire {
    address: SocketAddr,
    #[serde(default = "default_true")]
    ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serving: Option<bool>,
}

fn default_true() -> bool {
    true
}

/// Why an endpoint's conditions do not make an [`EndpointState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {0}: ready but not serving (a ready endpoint serves)")]
pub struct EndpointStateError(SocketAddr);

impl TryFrom<EndpointWire> for Endpoint {
    type Error = EndpointStateError;

    fn try_from(w: EndpointWire) -> Result<Self, Self::Error> {
        let state = match (w.ready, w.serving.unwrap_or(w.ready)) {
            (true, true) => EndpointState::Ready,
            (true, false) => return Err(EndpointStateError(w.address)),
            (false, true) => EndpointState::Terminating,
            (false, false) => EndpointState::NotServing,
        };
        Ok(Endpoint {
            address: w.address,
            state,
        })
    }
}

impl From<Endpoint> for EndpointWire {
    fn from(e: Endpoint) -> Self {
        let (ready, serving) = match e.state {
            EndpointState::Ready => (true, None),
            EndpointState::Terminating => (false, Some(true)),
            EndpointState::NotServing => (false, None),
        };
        EndpointWire {
            address: e.address,
            ready,
            serving,
        }
    }
}

/// TLS to the backend (BackendTLSPolicy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTls {
    /// PEM CA bundle the backend's certificate must chain to.
    pub ca_pem: String,
    /// SNI sent, and the name verified unless `subjectAltNames` is set.
    pub hostname: String,
    /// If set, the certificate must match one of these instead of `hostname`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SubjectAltName {
    Hostname {
        value: String,
    },
    #[serde(rename = "URI")]
    Uri {
        value: String,
    },
}
