//! What translation produces: statuses (without timestamps: the status writer owns the clock)
//! and per-Gateway data-plane configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::ObjectKey;
use crate::model::core::LoadBalancerAddress;
use crate::model::gateway::RouteGroupKind;
use crate::model::route::ParentRef;

use pylon_config as dp;

use super::config::ClusterConfig;
use super::reason::{ConditionStatus, ConditionType, Reason};

/// A status condition without its lastTransitionTime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// The spec's reason.
    pub reason: Reason,
    /// Human-readable detail.
    pub message: String,
    /// Generation of the object this was computed from.
    pub observed_generation: i64,
}

impl Condition {
    /// Builds a condition.
    pub fn new(
        kind: ConditionType,
        ok: bool,
        reason: Reason,
        message: impl Into<String>,
        generation: i64,
    ) -> Self {
        Self {
            kind,
            status: ok.into(),
            reason,
            message: message.into(),
            observed_generation: generation,
        }
    }
}

/// Status of a GatewayClass owned by this controller.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Supported features (sorted).
    pub supported_features: Vec<String>,
}

/// Status of one listener.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Route kinds the listener accepts.
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Number of routes accepted on this listener.
    pub attached_routes: i32,
    /// Conditions.
    pub conditions: Vec<Condition>,
}

/// Status of a Gateway of this controller.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Addresses (from the data-plane Service).
    pub addresses: Vec<LoadBalancerAddress>,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Listener statuses, in spec order.
    pub listeners: Vec<ListenerStatus>,
    /// How many ListenerSets are attached (admitted and accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<i32>,
}

/// A ListenerSet's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetStatus {
    /// The Gateway it names (not written: lets honest status follow its data plane).
    pub gateway: ObjectKey,
    /// Conditions (Accepted, Programmed).
    pub conditions: Vec<Condition>,
    /// Its listeners' statuses, in spec order.
    pub listeners: Vec<ListenerStatus>,
}

/// This controller's status for one parent of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parentRef, as written (defaults applied).
    pub parent_ref: ParentRef,
    /// Conditions.
    pub conditions: Vec<Condition>,
}

/// An object's per-parent (or per-ancestor) statuses of this controller. Shared: an unchanged
/// route's statuses are the same allocation in every translation, honest overlay and status
/// pass that does not change them (and compare equal by pointer first), instead of a copy per
/// route in each at thousands of routes.
pub type ParentStatuses = Arc<Vec<RouteParentStatus>>;

/// Everything translation decides.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    /// GatewayClass statuses (only classes of this controller).
    pub gateway_classes: BTreeMap<String, GatewayClassStatus>,
    /// Gateway statuses (only Gateways of this controller's classes).
    pub gateways: BTreeMap<ObjectKey, GatewayStatus>,
    /// HTTPRoute parent statuses written by this controller (every route; empty = none ours).
    pub http_routes: BTreeMap<ObjectKey, ParentStatuses>,
    /// GRPCRoute parent statuses written by this controller (every route; empty = none ours).
    pub grpc_routes: BTreeMap<ObjectKey, ParentStatuses>,
    /// TLSRoute parent statuses written by this controller (every route; empty = none ours).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tls_routes: BTreeMap<ObjectKey, ParentStatuses>,
    /// TCPRoute parent statuses written by this controller (every route; empty = none ours).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp_routes: BTreeMap<ObjectKey, ParentStatuses>,
    /// UDPRoute parent statuses written by this controller (every route; empty = none ours).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub udp_routes: BTreeMap<ObjectKey, ParentStatuses>,
    /// ListenerSet statuses (those naming a Gateway of this controller).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub listener_sets: BTreeMap<ObjectKey, ListenerSetStatus>,
    /// Effective data-plane parameters per Gateway (provisioner input).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<ObjectKey, crate::model::params::GatewayParametersSpec>,
    /// BackendTLSPolicy ancestor statuses written by this controller (every policy).
    pub backend_tls_policies: BTreeMap<ObjectKey, ParentStatuses>,
    /// Data-plane config per Gateway (endpoints included).
    pub configs: BTreeMap<ObjectKey, dp::Config>,
    /// Backends per Gateway, kept so EndpointSlice changes re-resolve endpoints without a
    /// full translation.
    #[serde(skip)]
    pub clusters: BTreeMap<ObjectKey, BTreeMap<String, ClusterConfig>>,
}

/// The route kinds' parent statuses in a [`Translation`], by kind name.
pub type RouteStatuses<'a> = [(&'static str, &'a BTreeMap<ObjectKey, ParentStatuses>); 5];
/// As [`RouteStatuses`], to change.
pub type RouteStatusesMut<'a> = [(&'static str, &'a mut BTreeMap<ObjectKey, ParentStatuses>); 5];

impl Translation {
    /// Every route kind's parent statuses: what treats route kinds alike goes through this.
    pub fn routes(&self) -> RouteStatuses<'_> {
        [
            ("HTTPRoute", &self.http_routes),
            ("GRPCRoute", &self.grpc_routes),
            ("TLSRoute", &self.tls_routes),
            ("TCPRoute", &self.tcp_routes),
            ("UDPRoute", &self.udp_routes),
        ]
    }

    /// As [`routes`](Self::routes), to change.
    pub fn routes_mut(&mut self) -> RouteStatusesMut<'_> {
        [
            ("HTTPRoute", &mut self.http_routes),
            ("GRPCRoute", &mut self.grpc_routes),
            ("TLSRoute", &mut self.tls_routes),
            ("TCPRoute", &mut self.tcp_routes),
            ("UDPRoute", &mut self.udp_routes),
        ]
    }
}
