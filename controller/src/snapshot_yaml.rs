//! The golden tests' and tools' way in: a multi-document YAML stream of Kubernetes objects read
//! into a [`Snapshot`] through the same edge conversion the watcher uses ([`crate::kinds`]).
//! Apart from `snapshot` because it needs every kind, and the kinds need the snapshot.

use std::sync::Arc;

use crate::kinds::{self, Kind};
use crate::model::convert;
use crate::model::core::Namespace;
use crate::snapshot::{Options, Snapshot};

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
    (kinds::TlsRoutes::NAME, load::<kinds::TlsRoutes>),
    (kinds::TcpRoutes::NAME, load::<kinds::TcpRoutes>),
    (kinds::UdpRoutes::NAME, load::<kinds::UdpRoutes>),
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
            .chain(s.tls_routes.keys())
            .chain(s.tcp_routes.keys())
            .chain(s.udp_routes.keys())
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
}
