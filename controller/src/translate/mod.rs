//! The pure translation: `translate(&Snapshot) -> Translation`.
//!
//! No I/O, no clock, no mutation of the input: the same snapshot always yields the same
//! statuses and configs, which is what makes the golden tests meaningful.

pub mod addresses;
pub mod backend_tls;
pub mod ca;
pub mod config;
pub mod gateway;
pub mod incremental;
pub mod listener_set;
pub mod output;
pub mod params;
pub mod reason;
pub mod refs;
pub mod route;
pub mod rule_error;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::ObjectKey;
use crate::model::route::Route;
use crate::snapshot::Snapshot;

use crate::translate::reason::{ConditionStatus, ConditionType, Reason};
use output::{Condition, GatewayStatus, Translation};
use pylon_config as dp;
use route::{Attachment, OwnedGateway, TranslateRule};

/// Where a translation gets the parts that grow with the number of routes and backends, each
/// route's [`Attachment`] and each backend's endpoints: computed afresh ([`Fresh`], the pure
/// reference) or kept from an earlier translation when nothing they were computed from has
/// changed ([`incremental::Incremental`]).
pub trait Parts {
    /// The attachment of `route` (at `key`) to the Gateways' validated listeners.
    fn attach<R: TranslateRule + Send + Sync + 'static>(
        &mut self,
        s: &Snapshot,
        key: &ObjectKey,
        route: &Arc<Route<R>>,
        gateways: &BTreeMap<ObjectKey, OwnedGateway<'_>>,
    ) -> Arc<Attachment>;

    /// The endpoints of one Gateway's backends.
    fn endpoints(
        &mut self,
        s: &Snapshot,
        clusters: &BTreeMap<String, config::ClusterConfig>,
    ) -> config::Endpoints {
        config::resolve_endpoints(s, clusters)
    }
}

/// Every part computed from the snapshot.
pub struct Fresh;

impl Parts for Fresh {
    fn attach<R: TranslateRule + Send + Sync + 'static>(
        &mut self,
        s: &Snapshot,
        _key: &ObjectKey,
        route: &Arc<Route<R>>,
        gateways: &BTreeMap<ObjectKey, OwnedGateway<'_>>,
    ) -> Arc<Attachment> {
        Arc::new(route::attach(s, route, gateways))
    }
}

/// Translates a snapshot into statuses and data-plane configs: the pure reference every
/// incremental translation must equal.
pub fn translate(s: &Snapshot) -> Translation {
    translate_with(s, &mut Fresh)
}

/// Translates a snapshot, taking routes' attachments and backends' endpoints from `parts`.
pub fn translate_with(s: &Snapshot, parts: &mut impl Parts) -> Translation {
    let mut t = Translation::default();
    let ours = |class: &str| {
        s.gateway_classes
            .get(class)
            .is_some_and(|c| c.controller_name == s.options.controller_name)
    };
    for (name, class) in &s.gateway_classes {
        if class.controller_name == s.options.controller_name {
            t.gateway_classes
                .insert(name.clone(), gateway::class_status(s, class));
        }
    }
    let mut owned: BTreeMap<ObjectKey, OwnedGateway<'_>> = BTreeMap::new();
    let mut sets = BTreeMap::new();
    for (key, gw) in &s.gateways {
        if !ours(&gw.spec.gateway_class_name) {
            continue;
        }
        let (admitted, refused) = listener_set::for_gateway(s, gw);
        for (set, why) in refused {
            t.listener_sets
                .insert(set.meta.key(), listener_set::refused_status(set, key, &why));
        }
        let listeners = gateway::listeners(s, gw, &admitted);
        let config = dp::Config {
            api_version: dp::API_VERSION.into(),
            listeners: listeners
                .iter()
                .filter(|l| l.programmed)
                .filter_map(dp_listener)
                .collect(),
            backends: BTreeMap::new(),
        };
        let attached = vec![0; listeners.len()];
        sets.insert(key.clone(), admitted);
        owned.insert(
            key.clone(),
            OwnedGateway {
                listeners,
                attached,
                config,
                clusters: BTreeMap::new(),
            },
        );
    }
    t.http_routes = attach_all(s, &s.http_routes, parts, &mut owned);
    t.grpc_routes = attach_all(s, &s.grpc_routes, parts, &mut owned);
    t.tls_routes = attach_all(s, &s.tls_routes, parts, &mut owned);
    t.tcp_routes = attach_all(s, &s.tcp_routes, parts, &mut owned);
    t.udp_routes = attach_all(s, &s.udp_routes, parts, &mut owned);
    let mut uses = backend_tls::Uses::default();
    for (key, o) in &owned {
        for c in o.clusters.values() {
            if let Some(policy) = &c.policy {
                uses.applied(policy, key);
            }
            for policy in &c.conflicted {
                uses.conflicted(policy, key, c.policy.as_ref());
            }
        }
    }
    t.backend_tls_policies = backend_tls::statuses(s, &uses);
    for (key, mut o) in owned {
        let gw = &s.gateways[&key];
        let mut attached_sets = 0;
        for set in sets.remove(&key).unwrap_or_default() {
            let st = listener_set::admitted_status(set, &key, &o.listeners, &o.attached);
            attached_sets += i32::from(st.conditions[0].status == ConditionStatus::True);
            t.listener_sets.insert(set.meta.key(), st);
        }
        let client_cert = gateway::backend_client_certificate(s, gw);
        if let Some(Ok(c)) = &client_cert {
            for tls in o.clusters.values_mut().filter_map(|c| c.tls.as_mut()) {
                tls.client_cert_pem = Some(c.cert_pem.clone());
                tls.client_key_pem = Some(c.key_pem.clone());
            }
        }
        t.gateways.insert(
            key.clone(),
            gateway_status(s, gw, &o, client_cert.and_then(Result::err), attached_sets),
        );
        if let Ok(p) = params::gateway_params(s, gw) {
            t.parameters.insert(key.clone(), p);
        }
        // Canonical order (stable: one route's entries keep theirs), so that a config is the one
        // value the data plane rebuilds from a delta.
        for l in &mut o.config.listeners {
            l.routes
                .sort_by(|a, b| pylon_config::delta::route_order(a, b));
        }
        let endpoints = parts.endpoints(s, &o.clusters);
        t.configs.insert(
            key.clone(),
            config::with_backends(o.config, &o.clusters, &endpoints),
        );
        t.clusters.insert(key, o.clusters);
    }
    t
}

/// Attaches every route of one kind and places it on its Gateways; returns the routes'
/// statuses. Routes with no parent of ours are listed too (empty), so the status writer
/// removes entries it wrote before a parentRef was dropped.
fn attach_all<R: TranslateRule + Send + Sync + 'static>(
    s: &Snapshot,
    routes: &BTreeMap<ObjectKey, Arc<Route<R>>>,
    parts: &mut impl Parts,
    owned: &mut BTreeMap<ObjectKey, OwnedGateway<'_>>,
) -> BTreeMap<ObjectKey, output::ParentStatuses> {
    routes
        .iter()
        .map(|(key, r)| {
            let a = parts.attach(s, key, r, owned);
            a.place(owned);
            (key.clone(), a.statuses.clone())
        })
        .collect()
}

/// A programmed listener in the data plane's terms (`None` if its port does not fit a u16,
/// which the CRD already forbids).
fn dp_listener(l: &gateway::ListenerInfo<'_>) -> Option<dp::Listener> {
    // Only protocols `gateway::validate` accepts are programmed.
    let protocol = match l.listener.protocol.as_str() {
        "HTTPS" => dp::ListenerProtocol::Https,
        "TLS" => dp::ListenerProtocol::Tls,
        "TCP" => dp::ListenerProtocol::Tcp,
        "UDP" => dp::ListenerProtocol::Udp,
        _ => dp::ListenerProtocol::Http,
    };
    Some(dp::Listener {
        name: l.config_name(),
        port: u16::try_from(l.listener.port).ok()?,
        protocol,
        hostname: gateway::effective_hostname(l.listener).map(str::to_string),
        // A TLS listener without it passes TLS through.
        tls: l.terminates.then(|| dp::ListenerTls {
            certificates: l
                .certificates
                .iter()
                .map(|c| dp::Certificate {
                    hostnames: vec![],
                    cert_pem: c.cert_pem.clone(),
                    key_pem: c.key_pem.clone(),
                })
                .collect(),
            client_validation: l.client_validation.clone(),
        }),
        routes: vec![],
    })
}

fn gateway_status(
    s: &Snapshot,
    gw: &crate::model::gateway::Gateway,
    o: &OwnedGateway<'_>,
    client_cert_error: Option<refs::CertificateError>,
    attached_listener_sets: i32,
) -> GatewayStatus {
    let g = gw.meta.generation;
    let listeners: Vec<_> = o
        .listeners
        .iter()
        .zip(&o.attached)
        .filter(|(l, _)| l.owner == gateway::Owner::Gateway)
        .map(|(l, n)| gateway::listener_status(l, *n, g))
        .collect();
    let svc_key = ObjectKey::new(
        gw.meta.namespace.clone(),
        crate::naming::dataplane_name(&gw.meta.name),
    );
    let assigned = s
        .services
        .get(&svc_key)
        .map(|svc| svc.load_balancer.clone())
        .unwrap_or_default();
    let own = || {
        o.listeners
            .iter()
            .filter(|l| l.owner == gateway::Owner::Gateway)
    };
    let valid = own().filter(|l| l.programmed).count();
    let requested = addresses::requested(gw);
    let accepted = if let Err(e) = params::gateway_params(s, gw) {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::InvalidParameters,
            e.to_string(),
            g,
        )
    } else if let addresses::Requested::Unsupported(why) = &requested {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::UnsupportedAddress,
            why.clone(),
            g,
        )
    } else if valid == own().count() {
        Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Gateway is accepted",
            g,
        )
    } else if valid > 0 {
        Condition::new(
            ConditionType::Accepted,
            true,
            Reason::ListenersNotValid,
            "Some listeners are not valid",
            g,
        )
    } else {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::ListenersNotValid,
            "No listener is valid",
            g,
        )
    };
    let programmed = if accepted.status != ConditionStatus::True {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "Gateway is not accepted",
            g,
        )
    } else if let addresses::Requested::TooMany(ips) = &requested {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::AddressNotUsable,
            format!(
                "the data-plane Service has one load-balancer IP; {} requested ({}): keep one",
                ips.len(),
                ips.join(", ")
            ),
            g,
        )
    } else if let addresses::Requested::One(ip) = requested
        && !assigned.iter().any(|a| a.value == ip.to_string())
    {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::AddressNotAssigned,
            format!("waiting for the load balancer to assign the requested address {ip}"),
            g,
        )
    } else if assigned.is_empty() {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::AddressNotAssigned,
            "The data-plane Service has no address yet",
            g,
        )
    } else {
        Condition::new(
            ConditionType::Programmed,
            true,
            Reason::Programmed,
            "Gateway is programmed",
            g,
        )
    };
    // Gateway-level references: the client certificate presented to backends.
    let resolved = match client_cert_error {
        None => Condition::new(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references resolved",
            g,
        ),
        Some(e) => {
            let reason = match e {
                refs::CertificateError::NotPermitted(_) => Reason::RefNotPermitted,
                _ => Reason::InvalidClientCertificateRef,
            };
            Condition::new(
                ConditionType::ResolvedRefs,
                false,
                reason,
                format!("spec.tls.backend.clientCertificateRef: {e}"),
                g,
            )
        }
    };
    let mut conditions = vec![accepted, programmed, resolved];
    let insecure = gw
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.frontend.as_ref())
        .is_some_and(|f| f.validations().any(|v| v.mode == "AllowInsecureFallback"));
    if insecure {
        conditions.push(Condition::new(
            ConditionType::InsecureFrontendValidationMode,
            true,
            Reason::ConfigurationChanged,
            "client certificate validation allows insecure fallback: clients without a valid certificate are served",
            g,
        ));
    }
    // A requested static address is the Gateway's address (Programmed says whether the load
    // balancer serves it yet); a load balancer still holding an earlier one must not show it.
    let addresses = match requested {
        addresses::Requested::One(ip) => vec![crate::model::core::LoadBalancerAddress {
            kind: "IPAddress".into(),
            value: ip.to_string(),
        }],
        _ => assigned,
    };
    GatewayStatus {
        addresses,
        conditions,
        listeners,
        // Only Gateways that allow ListenerSets report how many are attached.
        attached_listener_sets: gw
            .spec
            .allowed_listeners
            .as_ref()
            .map(|_| attached_listener_sets),
    }
}
