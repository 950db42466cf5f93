//! Gateway `spec.addresses`: which static address the data-plane Service asks its load
//! balancer for, and the conditions when that cannot be done.

use std::net::IpAddr;

use crate::model::gateway::Gateway;

/// What a Gateway's `spec.addresses` asks of Pylon.
#[derive(Debug, PartialEq)]
pub enum Requested {
    /// No address, or IPAddress entries without a value: the load balancer picks one.
    Any,
    /// One static IP: the data-plane Service's `spec.loadBalancerIP`.
    One(IpAddr),
    /// Something Pylon cannot express (Accepted=False, UnsupportedAddress).
    Unsupported(String),
    /// Several static IPs: a Service has one load-balancer IP (Programmed=False,
    /// AddressNotUsable).
    TooMany(Vec<String>),
}

/// Reads a Gateway's `spec.addresses`.
pub fn requested(gw: &Gateway) -> Requested {
    let mut ips = vec![];
    for a in &gw.spec.addresses {
        if a.kind != "IPAddress" {
            return Requested::Unsupported(format!(
                "address type {:?} is not supported (only IPAddress)",
                a.kind
            ));
        }
        if a.value.is_empty() {
            continue;
        }
        match a.value.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => {
                return Requested::Unsupported(format!("{:?} is not an IP address", a.value));
            }
        }
    }
    match ips.as_slice() {
        [] => Requested::Any,
        [ip] => Requested::One(*ip),
        _ => Requested::TooMany(ips.iter().map(ToString::to_string).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gateway::GatewayAddress;

    fn gw(addresses: &[(&str, &str)]) -> Gateway {
        Gateway {
            meta: crate::model::Meta::default(),
            spec: crate::model::gateway::GatewaySpec {
                addresses: addresses
                    .iter()
                    .map(|(kind, value)| GatewayAddress {
                        kind: kind.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn reads_the_requested_addresses() {
        assert_eq!(requested(&gw(&[])), Requested::Any);
        assert_eq!(requested(&gw(&[("IPAddress", "")])), Requested::Any);
        assert_eq!(
            requested(&gw(&[("IPAddress", "10.245.0.200")])),
            Requested::One("10.245.0.200".parse().unwrap())
        );
        assert!(matches!(
            requested(&gw(&[("Hostname", "gw.example.com")])),
            Requested::Unsupported(m) if m.contains("Hostname")
        ));
        assert!(matches!(
            requested(&gw(&[("IPAddress", "1.2.3.4"), ("test/fake", "x")])),
            Requested::Unsupported(_)
        ));
        assert_eq!(
            requested(&gw(&[
                ("IPAddress", "192.0.2.1"),
                ("IPAddress", "10.245.0.200")
            ])),
            Requested::TooMany(vec!["192.0.2.1".into(), "10.245.0.200".into()])
        );
    }
}
