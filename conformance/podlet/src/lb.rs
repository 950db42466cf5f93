//! LoadBalancer Services: assigns each an address from the LB pool and publishes it in
//! `status.loadBalancer.ingress`; kube-proxy then routes it. Released on delete or type change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::ipam::{Cidr, Pool};

/// What should happen to one Service.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Keep or publish this address.
    Assign(Ipv4Addr),
    /// The Service no longer wants an address from us: release and clear status.
    Release,
    Nothing,
}

/// Allocation state: the pool plus which Service holds which address.
pub struct Allocator {
    pool: Pool,
    held: BTreeMap<String, Ipv4Addr>,
}

fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    )
}

fn status_ip(svc: &Service) -> Option<Ipv4Addr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .as_ref()?
        .parse()
        .ok()
}

fn wants_lb(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec
            .and_then(|s| s.load_balancer_class.as_deref())
            .is_none()
}

impl Allocator {
    pub fn new(cidr: Cidr) -> Self {
        Self {
            pool: Pool::new(cidr, vec![]),
            held: BTreeMap::new(),
        }
    }

    /// Decides (and records) the address for a Service that was added or changed.
    pub fn apply(&mut self, svc: &Service) -> Result<Action, crate::ipam::IpamError> {
        let k = key(svc);
        if !wants_lb(svc) {
            return Ok(match self.held.remove(&k) {
                Some(ip) => {
                    self.pool.release(ip);
                    Action::Release
                }
                None => Action::Nothing,
            });
        }
        let requested = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .filter(|s| !s.is_empty());
        if let Some(text) = requested {
            // A requested address is honoured exactly or not at all (as cloud load balancers
            // do): handing out a different one would hide the problem from the Gateway.
            let held = self.held.get(&k).copied();
            let r: Ipv4Addr = match text.parse() {
                Ok(r) => r,
                Err(_) => return Err(crate::ipam::IpamError::BadAddress(text.to_owned())),
            };
            if held == Some(r) {
                return Ok(Action::Assign(r));
            }
            self.pool.claim(r)?;
            if let Some(old) = held {
                self.pool.release(old);
            }
            self.held.insert(k, r);
            return Ok(Action::Assign(r));
        }
        if let Some(held) = self.held.get(&k).copied() {
            return Ok(Action::Assign(held));
        }
        let ip = match status_ip(svc).filter(|ip| self.pool.claim(*ip).is_ok()) {
            Some(current) => current, // published by a previous run of the podlet
            None => self.pool.allocate()?,
        };
        self.held.insert(k, ip);
        Ok(Action::Assign(ip))
    }

    /// Drops the address a Service holds (its request can no longer be honoured).
    pub fn unassign(&mut self, svc: &Service) -> bool {
        match self.held.remove(&key(svc)) {
            Some(ip) => {
                self.pool.release(ip);
                true
            }
            None => false,
        }
    }

    /// Releases a deleted Service's address.
    pub fn delete(&mut self, svc: &Service) {
        if let Some(ip) = self.held.remove(&key(svc)) {
            self.pool.release(ip);
        }
    }

    /// After a full re-list: releases addresses of Services that no longer exist (deleted
    /// while the watch was down, so no Delete event came).
    pub fn retain_listed(&mut self, listed: &std::collections::BTreeSet<String>) {
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(ip) = self.held.remove(&k) {
                self.pool.release(ip);
            }
        }
    }
}

/// Watches all Services and keeps LoadBalancer addresses assigned.
pub async fn run(client: kube::Client, cidr: Cidr) {
    let api: Api<Service> = Api::all(client.clone());
    let mut alloc = Allocator::new(cidr);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = std::collections::BTreeSet::new();
    while let Some(event) = stream.next().await {
        let svc = match event {
            Ok(watcher::Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(s)) => {
                listed.insert(key(&s));
                s
            }
            Ok(watcher::Event::InitDone) => {
                alloc.retain_listed(&listed);
                continue;
            }
            Ok(watcher::Event::Apply(s)) => s,
            Ok(watcher::Event::Delete(s)) => {
                alloc.delete(&s);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "service watch error; retrying");
                continue;
            }
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let status = match alloc.apply(&svc) {
            Ok(Action::Assign(ip)) if status_ip(&svc) == Some(ip) => continue,
            Ok(Action::Assign(ip)) => {
                json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}})
            }
            Ok(Action::Release) => json!({"status": {"loadBalancer": {"ingress": null}}}),
            Ok(Action::Nothing) => continue,
            Err(e) => {
                tracing::warn!(service = %name, namespace = %ns, error = %e, "cannot assign a load-balancer address");
                // Whatever it had no longer matches what it asks for.
                alloc.unassign(&svc);
                if status_ip(&svc).is_none() {
                    continue;
                }
                json!({"status": {"loadBalancer": {"ingress": null}}})
            }
        };
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(service = %name, namespace = %ns, error = %e, "writing load-balancer status");
        } else {
            tracing::info!(service = %name, namespace = %ns, status = %status, "load-balancer status written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, type_: &str, requested: Option<&str>, status: Option<&str>) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"type": type_, "loadBalancerIP": requested},
            "status": {"loadBalancer": {"ingress": status.map(|ip| vec![json!({"ip": ip})])}},
        }))
        .unwrap()
    }

    #[test]
    fn assigns_honours_requests_and_releases() {
        let mut a = Allocator::new("10.245.0.0/24".parse().unwrap());
        let one = Ipv4Addr::new(10, 245, 0, 1);
        assert_eq!(
            a.apply(&svc("a", "LoadBalancer", None, None)).unwrap(),
            Action::Assign(one)
        );
        // Re-applying keeps the address.
        assert_eq!(
            a.apply(&svc("a", "LoadBalancer", None, Some("10.245.0.1")))
                .unwrap(),
            Action::Assign(one)
        );
        let want = Ipv4Addr::new(10, 245, 0, 77);
        assert_eq!(
            a.apply(&svc("b", "LoadBalancer", Some("10.245.0.77"), None))
                .unwrap(),
            Action::Assign(want)
        );
        // Someone else asking for a held address fails clearly.
        assert!(
            a.apply(&svc("c", "LoadBalancer", Some("10.245.0.77"), None))
                .is_err()
        );
        // So does an address outside the pool or not an address: no substitute is handed out.
        let outside = a
            .apply(&svc("x", "LoadBalancer", Some("192.0.2.1"), None))
            .unwrap_err();
        assert!(outside.to_string().contains("192.0.2.1"), "{outside}");
        assert!(
            a.apply(&svc("x", "LoadBalancer", Some("nope"), None))
                .is_err()
        );
        // Type change releases; the address becomes available again.
        assert_eq!(
            a.apply(&svc("b", "ClusterIP", None, None)).unwrap(),
            Action::Release
        );
        assert_eq!(
            a.apply(&svc("c", "LoadBalancer", Some("10.245.0.77"), None))
                .unwrap(),
            Action::Assign(want)
        );
        assert_eq!(
            a.apply(&svc("d", "ClusterIP", None, None)).unwrap(),
            Action::Nothing
        );
        // A previous run's published address is adopted.
        assert_eq!(
            a.apply(&svc("e", "LoadBalancer", None, Some("10.245.0.9")))
                .unwrap(),
            Action::Assign(Ipv4Addr::new(10, 245, 0, 9))
        );
        a.delete(&svc("a", "LoadBalancer", None, None));
        assert!(a.pool.claim(one).is_ok());
        // A re-list that no longer contains "c" releases its address.
        a.retain_listed(&std::collections::BTreeSet::from(["ns/e".to_string()]));
        assert!(a.pool.claim(want).is_ok());
        assert!(
            a.pool.claim(Ipv4Addr::new(10, 245, 0, 9)).is_err(),
            "e keeps its address"
        );
    }
}
