//! GatewayClass, Gateway (with its listeners) and ReferenceGrant, with CRD defaults applied.

use serde::{Deserialize, Serialize};

use super::{LabelSelector, Meta};

/// A GatewayClass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayClass {
    /// Metadata (namespace is empty: cluster-scoped).
    pub meta: Meta,
    /// `spec.controllerName`.
    pub controller_name: String,
    /// `spec.parametersRef`, if any.
    pub parameters_ref: Option<ParametersRef>,
}

/// A reference to implementation-specific parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParametersRef {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (GatewayClass references may name one).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A Gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    /// Metadata.
    pub meta: Meta,
    /// The spec.
    pub spec: GatewaySpec,
}

/// The parts of `Gateway.spec` Pylon reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// `spec.gatewayClassName`.
    pub gateway_class_name: String,
    /// Listeners, in spec order.
    pub listeners: Vec<Listener>,
    /// Requested addresses (Pylon does not support static addresses yet).
    #[serde(default)]
    pub addresses: Vec<GatewayAddress>,
    /// Labels and annotations to put on generated infrastructure.
    #[serde(default)]
    pub infrastructure: Infrastructure,
    /// `spec.tls`: client certificate validation per port, client certificate for backends.
    #[serde(default)]
    pub tls: Option<GatewayTls>,
    /// Which ListenerSets may add listeners (none unless set).
    #[serde(default)]
    pub allowed_listeners: Option<AllowedListeners>,
}

/// `spec.allowedListeners`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AllowedListeners {
    /// Namespaces ListenerSets may come from.
    #[serde(default)]
    pub namespaces: ListenerNamespaces,
}

/// `allowedListeners.namespaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenerNamespaces {
    /// None (CRD default), Same, All or Selector.
    #[serde(default = "default_listeners_from")]
    pub from: String,
    /// The selector for `from: Selector`.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

impl Default for ListenerNamespaces {
    fn default() -> Self {
        Self {
            from: default_listeners_from(),
            selector: None,
        }
    }
}

fn default_listeners_from() -> String {
    "None".into()
}

/// A ListenerSet: listeners added to a Gateway from outside its spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenerSet {
    /// Metadata.
    pub meta: Meta,
    /// The spec.
    pub spec: ListenerSetSpec,
}

/// `ListenerSet.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetSpec {
    /// The Gateway the listeners join.
    pub parent_ref: ListenerSetParentRef,
    /// The listeners (same shape as a Gateway's).
    pub listeners: Vec<Listener>,
}

/// `ListenerSet.spec.parentRef`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenerSetParentRef {
    /// API group (CRD default gateway.networking.k8s.io).
    #[serde(default = "default_gateway_group")]
    pub group: String,
    /// Kind (CRD default Gateway).
    #[serde(default = "default_gateway_kind")]
    pub kind: String,
    /// Gateway name.
    pub name: String,
    /// Gateway namespace; `None` means the ListenerSet's.
    #[serde(default)]
    pub namespace: Option<String>,
}

fn default_gateway_kind() -> String {
    "Gateway".into()
}

/// `spec.tls`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTls {
    /// How clients are validated on HTTPS listeners.
    #[serde(default)]
    pub frontend: Option<FrontendTls>,
    /// TLS settings towards backends.
    #[serde(default)]
    pub backend: Option<GatewayBackendTls>,
}

/// `spec.tls.frontend`: a default and per-port overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// For ports without an override.
    #[serde(default)]
    pub default: FrontendTlsConfig,
    /// Per-port overrides.
    #[serde(default)]
    pub per_port: Vec<FrontendPortTls>,
}

impl FrontendTls {
    /// The settings that apply to a port.
    pub fn for_port(&self, port: i32) -> &FrontendTlsConfig {
        self.per_port
            .iter()
            .find(|p| p.port == port)
            .map_or(&self.default, |p| &p.tls)
    }

    /// Every validation configured, default first.
    pub fn validations(&self) -> impl Iterator<Item = &FrontendValidation> {
        std::iter::once(&self.default)
            .chain(self.per_port.iter().map(|p| &p.tls))
            .filter_map(|t| t.validation.as_ref())
    }
}

/// TLS settings of a frontend port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsConfig {
    /// Client certificate validation; `None` = no client certificate asked.
    #[serde(default)]
    pub validation: Option<FrontendValidation>,
}

/// `perPort[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrontendPortTls {
    /// The port.
    pub port: i32,
    /// Its settings.
    pub tls: FrontendTlsConfig,
}

/// Client certificate validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendValidation {
    /// CA bundles client certificates must chain to.
    #[serde(default)]
    pub ca_certificate_refs: Vec<ObjectReference>,
    /// AllowValidOnly (CRD default) or AllowInsecureFallback.
    #[serde(default = "default_validation_mode")]
    pub mode: String,
}

fn default_validation_mode() -> String {
    "AllowValidOnly".into()
}

/// A reference to any object (no defaults for group and kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectReference {
    /// API group ("" = core).
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; `None` means the referrer's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `spec.tls.backend`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBackendTls {
    /// Client certificate presented to backends that use TLS.
    #[serde(default)]
    pub client_certificate_ref: Option<SecretObjectReference>,
}

/// A requested Gateway address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayAddress {
    /// Address type; the CRD default is IPAddress.
    #[serde(default = "default_address_type", rename = "type")]
    pub kind: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

fn default_address_type() -> String {
    "IPAddress".into()
}

/// `spec.infrastructure`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Infrastructure {
    /// Labels for generated resources.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations for generated resources.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `parametersRef` (local).
    #[serde(default)]
    pub parameters_ref: Option<ParametersRef>,
}

/// One listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Listener name (unique within the Gateway).
    pub name: String,
    /// Hostname the listener matches; `None` matches all.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Port.
    pub port: i32,
    /// Protocol as written (HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed custom one).
    pub protocol: String,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Which routes may attach (CRD default: namespaces from Same, kinds by protocol).
    #[serde(default)]
    pub allowed_routes: AllowedRoutes,
}

/// `listener.tls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// Terminate (CRD default) or Passthrough.
    #[serde(default)]
    pub mode: TlsMode,
    /// Certificate references.
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
}

/// `listener.tls.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMode {
    /// The Gateway completes the handshake with the listener's certificates.
    #[default]
    Terminate,
    /// The Gateway relays the client's TLS bytes to the backend, which terminates.
    Passthrough,
    /// A mode a newer API might add: refused with UnsupportedValue, never served.
    #[serde(other)]
    Unknown,
}

/// A reference to a Secret-like object (group "" and kind Secret by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretObjectReference {
    /// API group ("" = core).
    #[serde(default)]
    pub group: String,
    /// Kind (default Secret).
    #[serde(default = "default_secret_kind")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; `None` means the referrer's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

fn default_secret_kind() -> String {
    "Secret".into()
}

/// `listener.allowedRoutes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// Allowed kinds; empty means "the kinds the protocol supports".
    #[serde(default)]
    pub kinds: Vec<RouteGroupKind>,
    /// Allowed namespaces.
    #[serde(default)]
    pub namespaces: RouteNamespaces,
}

/// A group and kind of route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteGroupKind {
    /// API group (CRD default gateway.networking.k8s.io).
    #[serde(default = "default_gateway_group")]
    pub group: String,
    /// Kind.
    pub kind: String,
}

pub(crate) fn default_gateway_group() -> String {
    super::GATEWAY_GROUP.into()
}

/// `allowedRoutes.namespaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteNamespaces {
    /// All, Same (CRD default) or Selector.
    #[serde(default = "default_from")]
    pub from: String,
    /// The selector for `from: Selector`.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

impl Default for RouteNamespaces {
    fn default() -> Self {
        Self {
            from: default_from(),
            selector: None,
        }
    }
}

fn default_from() -> String {
    "Same".into()
}

/// A ReferenceGrant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceGrant {
    /// Metadata.
    pub meta: Meta,
    /// Who may refer.
    pub from: Vec<GrantFrom>,
    /// What may be referred to.
    pub to: Vec<GrantTo>,
}

/// `referenceGrant.spec.from[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrantFrom {
    /// Group of the referrer.
    pub group: String,
    /// Kind of the referrer.
    pub kind: String,
    /// Namespace of the referrer.
    pub namespace: String,
}

/// `referenceGrant.spec.to[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrantTo {
    /// Group of the target.
    pub group: String,
    /// Kind of the target.
    pub kind: String,
    /// Name of the target; `None` allows all.
    #[serde(default)]
    pub name: Option<String>,
}
