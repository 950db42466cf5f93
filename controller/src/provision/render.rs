//! Renders a Gateway's data-plane objects. Pure: the provisioner applies what this returns.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Service, ServiceAccount, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::model::gateway::Gateway;
use crate::model::params::GatewayParametersSpec;
use crate::snapshot::Options;

use super::dataplane_name;

/// Port of the data plane's admin server (readiness, metrics).
pub const ADMIN_PORT: i32 = 9901;

/// Label naming the Gateway a data-plane object belongs to.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The objects that make up one Gateway's data plane.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneObjects {
    /// The data plane's identity.
    pub service_account: ServiceAccount,
    /// The proxies.
    pub deployment: Deployment,
    /// How clients reach them.
    pub service: Service,
}

fn selector_labels(gw: &Gateway) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "pylon-dataplane".to_string(),
        ),
        (GATEWAY_NAME_LABEL.to_string(), gw.meta.name.clone()),
    ])
}

fn meta(gw: &Gateway, params: &GatewayParametersSpec) -> ObjectMeta {
    let mut labels = params.labels.clone();
    labels.extend(gw.spec.infrastructure.labels.clone());
    labels.extend(selector_labels(gw));
    labels.insert("app.kubernetes.io/managed-by".into(), "pylon".into());
    let mut annotations = params.annotations.clone();
    annotations.extend(gw.spec.infrastructure.annotations.clone());
    let annotations = &annotations;
    ObjectMeta {
        name: Some(dataplane_name(&gw.meta.name)),
        namespace: Some(gw.meta.namespace.clone()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        owner_references: Some(vec![OwnerReference {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            name: gw.meta.name.clone(),
            uid: gw.meta.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    }
}

/// Distinct listener ports with a name for each, in ascending order.
fn ports(gw: &Gateway) -> Vec<(String, i32)> {
    let mut by_port: BTreeMap<i32, String> = BTreeMap::new();
    for l in &gw.spec.listeners {
        by_port
            .entry(l.port)
            .or_insert_with(|| format!("{}-{}", l.protocol.to_lowercase(), l.port));
    }
    by_port.into_iter().map(|(p, n)| (n, p)).collect()
}

/// Renders the ServiceAccount, Deployment and Service of a Gateway's data plane with its
/// effective [`GatewayParametersSpec`].
pub fn render(gw: &Gateway, options: &Options, params: &GatewayParametersSpec) -> DataplaneObjects {
    let m = meta(gw, params);
    let selector = selector_labels(gw);
    let listener_ports = ports(gw);
    let mut container_ports: Vec<ContainerPort> = listener_ports
        .iter()
        .map(|(name, port)| ContainerPort {
            name: Some(truncate_port_name(name)),
            container_port: *port,
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect();
    container_ports.push(ContainerPort {
        name: Some("admin".into()),
        container_port: ADMIN_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    });
    let container = Container {
        name: "dataplane".into(),
        image: Some(
            params
                .image
                .clone()
                .unwrap_or_else(|| options.dataplane_image.clone()),
        ),
        resources: params.resources.as_ref().map(|r| {
            let q = |m: &BTreeMap<String, String>| {
                (!m.is_empty()).then(|| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                        .collect()
                })
            };
            ResourceRequirements {
                requests: q(&r.requests),
                limits: q(&r.limits),
                ..Default::default()
            }
        }),
        args: Some(vec![
            "--controller".into(),
            options.config_url.clone(),
            "--gateway".into(),
            format!("{}/{}", gw.meta.namespace, gw.meta.name),
            "--admin-addr".into(),
            format!("0.0.0.0:{ADMIN_PORT}"),
        ]),
        env: Some(vec![EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".into()),
                port: IntOrString::Int(ADMIN_PORT),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut template_labels = m.labels.clone().unwrap_or_default();
    template_labels.extend(selector.clone());
    let deployment = Deployment {
        metadata: m.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(params.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: m.annotations.clone(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: m.name.clone(),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = Service {
        metadata: m.clone(),
        spec: Some(ServiceSpec {
            type_: Some(
                params
                    .service_type
                    .clone()
                    .unwrap_or_else(|| "LoadBalancer".into()),
            ),
            selector: Some(selector),
            // A static address (Gateway spec.addresses) is asked of the load balancer; it
            // assigns exactly that or nothing, and status says which.
            load_balancer_ip: match crate::translate::addresses::requested(gw) {
                crate::translate::addresses::Requested::One(ip) => Some(ip.to_string()),
                _ => None,
            },
            ports: Some(
                listener_ports
                    .iter()
                    .map(|(name, port)| ServicePort {
                        name: Some(truncate_port_name(name)),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    DataplaneObjects {
        service_account: ServiceAccount {
            metadata: m,
            ..Default::default()
        },
        deployment,
        service,
    }
}

/// Port names are IANA service names: at most 15 characters.
fn truncate_port_name(name: &str) -> String {
    name.chars()
        .take(15)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}
