//! Renders a Gateway's data-plane objects. Pure: the provisioner applies what this returns.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::model::gateway::Gateway;
use crate::model::params::{
    Autoscaling, DEFAULT_CPU_UTILIZATION, DisruptionBudget, GatewayParametersSpec, IntOrPercent,
};
use crate::snapshot::Options;

use crate::naming::dataplane_name;

/// Port of the data plane's admin server (readiness, metrics).
pub const ADMIN_PORT: i32 = 9901;

/// Label naming the Gateway a data-plane object belongs to.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// Where the config CA bundle is mounted in the data-plane container.
pub const CONFIG_CA_DIR: &str = "/etc/pylon/config-ca";
/// Key of the bundle in the ConfigMap (and file name under [`CONFIG_CA_DIR`]).
pub const CONFIG_CA_KEY: &str = "ca.crt";
/// Pod-template annotation carrying a hash of the CA bundle: the data plane reads the bundle
/// once at start, so a new CA rolls the Pods instead of leaving them with the old one.
pub const CONFIG_CA_HASH_ANNOTATION: &str = "pylon.dev/config-ca-hash";

/// How long a data-plane Pod has between SIGTERM and SIGKILL: the data plane's drain delay
/// (5 s, still accepting while endpoints and kube-proxy rules move on), its drain timeout
/// (30 s for in-flight requests) and a margin. Both are the binary's defaults.
pub const TERMINATION_GRACE_SECONDS: i64 = 5 + 30 + 5;

/// The objects that make up one Gateway's data plane. The optional ones are deleted when
/// absent (see [`super::apply`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneObjects {
    /// The data plane's identity.
    pub service_account: ServiceAccount,
    /// The config CA bundle the data plane verifies the controller with (TLS mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_ca: Option<ConfigMap>,
    /// The proxies.
    pub deployment: Deployment,
    /// How clients reach them.
    pub service: Service,
    /// Scales the Deployment (parameters' `autoscaling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// Limits voluntary disruptions (parameters' `podDisruptionBudget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<PodDisruptionBudget>,
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

/// Distinct listener ports with a name and the transport ("TCP", "UDP") of each, TCP ones first,
/// each in ascending order (a TCP and a UDP listener may share a number).
fn ports(gw: &Gateway) -> Vec<(String, i32, &'static str)> {
    let mut by_port: BTreeMap<(&'static str, i32), String> = BTreeMap::new();
    for l in &gw.spec.listeners {
        let transport = if l.protocol == "UDP" { "UDP" } else { "TCP" };
        by_port
            .entry((transport, l.port))
            .or_insert_with(|| format!("{}-{}", l.protocol.to_lowercase(), l.port));
    }
    by_port.into_iter().map(|((t, p), n)| (n, p, t)).collect()
}

/// Renders the ServiceAccount, Deployment and Service of a Gateway's data plane with its
/// effective [`GatewayParametersSpec`].
pub fn render(gw: &Gateway, options: &Options, params: &GatewayParametersSpec) -> DataplaneObjects {
    let m = meta(gw, params);
    let selector = selector_labels(gw);
    let listener_ports = ports(gw);
    let mut container_ports: Vec<ContainerPort> = listener_ports
        .iter()
        .map(|(name, port, transport)| ContainerPort {
            name: Some(truncate_port_name(name)),
            container_port: *port,
            protocol: Some(transport.to_string()),
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
        args: Some(args(gw, options)),
        volume_mounts: options.config_ca.as_ref().map(|_| {
            vec![VolumeMount {
                name: "config-ca".into(),
                mount_path: CONFIG_CA_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }]
        }),
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
    let mut template_annotations = m.annotations.clone().unwrap_or_default();
    if let Some(ca) = &options.config_ca {
        template_annotations.insert(
            CONFIG_CA_HASH_ANNOTATION.into(),
            format!("{:016x}", crate::version::fnv64(ca.as_bytes())),
        );
    }
    let deployment = Deployment {
        metadata: m.clone(),
        spec: Some(DeploymentSpec {
            // With an autoscaler the field is left out, so server-side apply neither sets nor
            // owns it and the HorizontalPodAutoscaler's changes are never undone.
            replicas: params
                .autoscaling
                .is_none()
                .then(|| params.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            // A rollout starts a new Pod (ready) before it stops an old one: never fewer
            // serving Pods than asked for, and with one replica never none.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: (!template_annotations.is_empty()).then_some(template_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: m.name.clone(),
                    // The data plane authenticates to the config server with this token; set
                    // explicitly so a ServiceAccount or namespace default of `false` cannot
                    // silently break that.
                    automount_service_account_token: Some(true),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    containers: vec![container],
                    volumes: options.config_ca.as_ref().map(|_| {
                        vec![Volume {
                            name: "config-ca".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: m.name.clone().unwrap_or_default(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]
                    }),
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
            selector: Some(selector.clone()),
            // A static address (Gateway spec.addresses) is asked of the load balancer; it
            // assigns exactly that or nothing, and status says which.
            load_balancer_ip: match crate::translate::addresses::requested(gw) {
                crate::translate::addresses::Requested::One(ip) => Some(ip.to_string()),
                _ => None,
            },
            ports: Some(
                listener_ports
                    .iter()
                    .map(|(name, port, transport)| ServicePort {
                        name: Some(truncate_port_name(name)),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        protocol: Some(transport.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    DataplaneObjects {
        config_ca: options.config_ca.as_ref().map(|ca| ConfigMap {
            metadata: m.clone(),
            data: Some(BTreeMap::from([(CONFIG_CA_KEY.into(), ca.clone())])),
            ..Default::default()
        }),
        autoscaler: params.autoscaling.as_ref().map(|a| autoscaler(&m, a)),
        disruption_budget: params
            .pod_disruption_budget
            .as_ref()
            .map(|b| disruption_budget(&m, &selector, b)),
        service_account: ServiceAccount {
            metadata: m,
            ..Default::default()
        },
        deployment,
        service,
    }
}

/// The data plane's arguments: the config server and how to trust it, the Gateway, admin.
fn args(gw: &Gateway, options: &Options) -> Vec<String> {
    let mut args = vec!["--controller".into(), options.config_url.clone()];
    match options.config_ca {
        Some(_) => args.extend([
            "--config-ca".into(),
            format!("{CONFIG_CA_DIR}/{CONFIG_CA_KEY}"),
        ]),
        None => args.push("--controller-plaintext".into()),
    }
    args.extend([
        "--gateway".into(),
        format!("{}/{}", gw.meta.namespace, gw.meta.name),
        "--admin-addr".into(),
        format!("0.0.0.0:{ADMIN_PORT}"),
    ]);
    args
}

fn autoscaler(m: &ObjectMeta, a: &Autoscaling) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: m.clone(),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: m.name.clone().unwrap_or_default(),
            },
            min_replicas: Some(a.min_replicas.unwrap_or(1)),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(
                            a.target_cpu_utilization_percentage
                                .unwrap_or(DEFAULT_CPU_UTILIZATION),
                        ),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn disruption_budget(
    m: &ObjectMeta,
    selector: &BTreeMap<String, String>,
    b: &DisruptionBudget,
) -> PodDisruptionBudget {
    let v = |v: &IntOrPercent| match v {
        IntOrPercent::Int(n) => IntOrString::Int(*n),
        IntOrPercent::Percent(p) => IntOrString::String(p.clone()),
    };
    PodDisruptionBudget {
        metadata: m.clone(),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: b.min_available.as_ref().map(v),
            max_unavailable: b.max_unavailable.as_ref().map(v),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
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
