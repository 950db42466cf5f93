//! The [`Snapshot`]: every input translation reads, at one moment, plus the controller's options.
//!
//! Built from the reflector stores by the watcher, or from a multi-document YAML file by the
//! golden tests ([`Snapshot::from_yaml`]), through the same edge conversion.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::core::{ConfigMap, EndpointSlice, Namespace, Secret, Service};
use crate::model::gateway::{Gateway, GatewayClass, ListenerSet, ReferenceGrant};
use crate::model::policy::BackendTlsPolicy;
use crate::model::route::{GrpcRoute, HttpRoute};
use crate::model::{ObjectKey, convert};

/// Options that shape translation output (they are inputs too: translation stays pure).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Options {
    /// The controllerName this controller owns.
    pub controller_name: String,
    /// Image of generated data-plane Deployments.
    pub dataplane_image: String,
    /// URL data planes dial for their config.
    pub config_url: String,
    /// The config CA's certificate (PEM) data planes verify the config server with; `None`
    /// when the config server is plain HTTP (`--config-plaintext`).
    pub config_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controller_name: crate::DEFAULT_CONTROLLER_NAME.into(),
            dataplane_image: format!(
                "ghcr.io/pylon-dev/pylon-dataplane:{}",
                env!("CARGO_PKG_VERSION")
            ),
            // No CA is known without a cluster, so the default (golden tests) is the plaintext
            // mode; the binary defaults to TLS with the CA from its Secret.
            config_url: "http://pylon-controller.pylon-system.svc:18000".into(),
            config_ca: None,
        }
    }
}

/// Every input of translation. Maps are ordered so output is deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Options.
    pub options: Options,
    /// GatewayClasses by name.
    pub gateway_classes: BTreeMap<String, GatewayClass>,
    /// Gateways.
    pub gateways: BTreeMap<ObjectKey, Gateway>,
    /// ListenerSets.
    pub listener_sets: BTreeMap<ObjectKey, ListenerSet>,
    /// HTTPRoutes.
    pub http_routes: BTreeMap<ObjectKey, HttpRoute>,
    /// GRPCRoutes.
    pub grpc_routes: BTreeMap<ObjectKey, GrpcRoute>,
    /// ReferenceGrants.
    pub reference_grants: BTreeMap<ObjectKey, ReferenceGrant>,
    /// Services.
    pub services: BTreeMap<ObjectKey, Service>,
    /// EndpointSlices.
    pub endpoint_slices: BTreeMap<ObjectKey, EndpointSlice>,
    /// Secrets.
    pub secrets: BTreeMap<ObjectKey, Secret>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: BTreeMap<ObjectKey, BackendTlsPolicy>,
    /// ConfigMaps (CA bundles).
    pub config_maps: BTreeMap<ObjectKey, ConfigMap>,
    /// Pylon GatewayParameters.
    pub parameters: BTreeMap<ObjectKey, crate::model::params::GatewayParametersSpec>,
}

/// A YAML input that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not YAML, or not an object of the kind it claims.
    #[error("document {index}: {message}")]
    Parse {
        /// 0-based document index.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A kind translation does not read.
    #[error("document {index}: unsupported kind {kind:?}")]
    UnsupportedKind {
        /// 0-based document index.
        index: usize,
        /// The kind.
        kind: String,
    },
    /// The object converted badly.
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
}

fn parse<T: serde::de::DeserializeOwned>(
    index: usize,
    doc: serde_yaml::Value,
) -> Result<T, SnapshotError> {
    serde_yaml::from_value(doc).map_err(|e| SnapshotError::Parse {
        index,
        message: e.to_string(),
    })
}

impl Snapshot {
    /// Reads a multi-document YAML stream of Kubernetes objects. Namespaced objects without a
    /// namespace land in "default"; namespaces that objects use exist implicitly.
    pub fn from_yaml(text: &str, options: Options) -> Result<Self, SnapshotError> {
        use gateway_api::experimental as gw;
        let mut s = Snapshot {
            options,
            ..Default::default()
        };
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let mut value =
                serde_yaml::Value::deserialize(doc).map_err(|e| SnapshotError::Parse {
                    index,
                    message: e.to_string(),
                })?;
            if value.is_null() {
                continue;
            }
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            if kind != "GatewayClass" && kind != "Namespace" {
                let meta = value
                    .get_mut("metadata")
                    .and_then(|m| m.as_mapping_mut())
                    .ok_or_else(|| SnapshotError::Parse {
                        index,
                        message: "no metadata".into(),
                    })?;
                if !meta.contains_key("namespace") {
                    meta.insert("namespace".into(), "default".into());
                }
                if !meta.contains_key("generation") {
                    meta.insert("generation".into(), 1.into());
                }
            }
            match kind.as_str() {
                "GatewayClass" => {
                    let mut o: gw::gatewayclasses::GatewayClass = parse(index, value)?;
                    o.metadata.generation.get_or_insert(1);
                    let c = convert::gateway_class(&o);
                    s.gateway_classes.insert(c.meta.name.clone(), c);
                }
                "Gateway" => s.add_gateway(convert::gateway(&parse(index, value)?)?),
                "ListenerSet" => {
                    let o = convert::listener_set(&parse(index, value)?)?;
                    s.listener_sets.insert(o.meta.key(), o);
                }
                "HTTPRoute" => {
                    let r = convert::http_route(&parse(index, value)?)?;
                    s.http_routes.insert(r.meta.key(), r);
                }
                "GRPCRoute" => {
                    let r = convert::grpc_route(&parse(index, value)?)?;
                    s.grpc_routes.insert(r.meta.key(), r);
                }
                "ReferenceGrant" => {
                    let g = convert::reference_grant(&parse(index, value)?);
                    s.reference_grants.insert(g.meta.key(), g);
                }
                "Service" => {
                    let o = convert::service(&parse(index, value)?);
                    s.services.insert(o.meta.key(), o);
                }
                "EndpointSlice" => {
                    let o = convert::endpoint_slice(&parse(index, value)?)?;
                    s.endpoint_slices.insert(o.meta.key(), o);
                }
                "Secret" => {
                    let o = convert::secret(&parse(index, value)?);
                    s.secrets.insert(o.meta.key(), o);
                }
                "BackendTLSPolicy" => {
                    let p = convert::backend_tls_policy(&parse(index, value)?)?;
                    s.backend_tls_policies.insert(p.meta.key(), p);
                }
                "GatewayParameters" => {
                    let o: crate::model::params::GatewayParameters = parse(index, value)?;
                    let key = ObjectKey::new(
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default(),
                    );
                    s.parameters.insert(key, o.spec);
                }
                "ConfigMap" => {
                    let o = convert::config_map(&parse(index, value)?);
                    s.config_maps.insert(o.meta.key(), o);
                }
                "Namespace" => {
                    let o = convert::namespace(&parse(index, value)?);
                    s.namespaces.insert(o.meta.name.clone(), o);
                }
                _ => return Err(SnapshotError::UnsupportedKind { index, kind }),
            }
        }
        let used: Vec<String> = s
            .gateways
            .keys()
            .chain(s.http_routes.keys())
            .chain(s.grpc_routes.keys())
            .chain(s.services.keys())
            .map(|k| k.namespace.clone())
            .collect();
        for ns in used {
            s.namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
                meta: crate::model::Meta {
                    name: ns,
                    ..Default::default()
                },
            });
        }
        Ok(s)
    }

    fn add_gateway(&mut self, g: Gateway) {
        self.gateways.insert(g.meta.key(), g);
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .map(|n| n.meta.labels.clone())
            .unwrap_or_default()
    }
}

use serde::Deserialize as _;
