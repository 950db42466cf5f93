//! The [`Snapshot`]: every input translation reads, at one moment, plus the controller's options.
//!
//! Copied from the model the watcher keeps ([`crate::watch::Objects`]), or read from a
//! multi-document YAML file by the golden tests ([`Snapshot::from_yaml`]), through the same edge
//! conversion ([`crate::kinds`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::kinds::{self, Kind};
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
    pub gateway_classes: BTreeMap<String, Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: BTreeMap<ObjectKey, Arc<Gateway>>,
    /// ListenerSets.
    pub listener_sets: BTreeMap<ObjectKey, Arc<ListenerSet>>,
    /// HTTPRoutes.
    pub http_routes: BTreeMap<ObjectKey, Arc<HttpRoute>>,
    /// GRPCRoutes.
    pub grpc_routes: BTreeMap<ObjectKey, Arc<GrpcRoute>>,
    /// ReferenceGrants.
    pub reference_grants: BTreeMap<ObjectKey, Arc<ReferenceGrant>>,
    /// Services.
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// Secrets.
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Arc<Namespace>>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: BTreeMap<ObjectKey, Arc<BackendTlsPolicy>>,
    /// ConfigMaps (CA bundles).
    pub config_maps: BTreeMap<ObjectKey, Arc<ConfigMap>>,
    /// Pylon GatewayParameters.
    pub parameters: BTreeMap<ObjectKey, Arc<crate::model::params::GatewayParametersSpec>>,
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

/// Reads one document of a known kind into a snapshot.
type Loader = fn(&mut Snapshot, usize, serde_yaml::Value) -> Result<(), SnapshotError>;

/// Per kind name ([`Kind::NAME`]), its loader.
const LOADERS: [(&str, Loader); kinds::COUNT] = [
    (kinds::GatewayClasses::NAME, load::<kinds::GatewayClasses>),
    (kinds::Gateways::NAME, load::<kinds::Gateways>),
    (kinds::ListenerSets::NAME, load::<kinds::ListenerSets>),
    (kinds::HttpRoutes::NAME, load::<kinds::HttpRoutes>),
    (kinds::GrpcRoutes::NAME, load::<kinds::GrpcRoutes>),
    (kinds::ReferenceGrants::NAME, load::<kinds::ReferenceGrants>),
    (kinds::Services::NAME, load::<kinds::Services>),
    (kinds::EndpointSlices::NAME, load::<kinds::EndpointSlices>),
    (kinds::Secrets::NAME, load::<kinds::Secrets>),
    (
        kinds::BackendTlsPolicies::NAME,
        load::<kinds::BackendTlsPolicies>,
    ),
    (kinds::Parameters::NAME, load::<kinds::Parameters>),
    (kinds::ConfigMaps::NAME, load::<kinds::ConfigMaps>),
    (kinds::Namespaces::NAME, load::<kinds::Namespaces>),
];

/// Reads one document as a `K`, with the metadata the API server would have set: a namespace
/// ("default") and a generation (1).
fn load<K: Kind>(
    s: &mut Snapshot,
    index: usize,
    mut doc: serde_yaml::Value,
) -> Result<(), SnapshotError> {
    let meta = doc
        .get_mut("metadata")
        .and_then(|m| m.as_mapping_mut())
        .ok_or_else(|| SnapshotError::Parse {
            index,
            message: "no metadata".into(),
        })?;
    if K::NAMESPACED && !meta.contains_key("namespace") {
        meta.insert("namespace".into(), "default".into());
    }
    if !meta.contains_key("generation") {
        meta.insert("generation".into(), 1.into());
    }
    kinds::upsert::<K>(s, &parse(index, doc)?)?;
    Ok(())
}

/// Reads a document (a stream's next, or one already read as a value) as a `T`.
fn parse<'de, T: serde::Deserialize<'de>>(
    index: usize,
    doc: impl serde::Deserializer<'de, Error = serde_yaml::Error>,
) -> Result<T, SnapshotError> {
    T::deserialize(doc).map_err(|e| SnapshotError::Parse {
        index,
        message: e.to_string(),
    })
}

impl Snapshot {
    /// Reads a multi-document YAML stream of Kubernetes objects. Namespaced objects without a
    /// namespace land in "default"; namespaces that objects use exist implicitly.
    pub fn from_yaml(text: &str, options: Options) -> Result<Self, SnapshotError> {
        let mut s = Snapshot {
            options,
            ..Default::default()
        };
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value: serde_yaml::Value = parse(index, doc)?;
            if value.is_null() {
                continue;
            }
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            let Some(&(_, load)) = LOADERS.iter().find(|(name, _)| *name == kind) else {
                return Err(SnapshotError::UnsupportedKind { index, kind });
            };
            load(&mut s, index, value)?;
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
            s.namespaces.entry(ns.clone()).or_insert_with(|| {
                Arc::new(Namespace {
                    meta: crate::model::Meta {
                        name: ns,
                        ..Default::default()
                    },
                })
            });
        }
        Ok(s)
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .map(|n| n.meta.labels.clone())
            .unwrap_or_default()
    }
}
