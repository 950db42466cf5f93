//! IPv4 address pools: Pod IPs from the pod CIDR and LoadBalancer IPs from the LB pool.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Errors parsing CIDRs or allocating from a pool.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IpamError {
    #[error("invalid IPv4 CIDR {0:?} (want a.b.c.d/len)")]
    Cidr(String),
    #[error("address pool {0} is exhausted")]
    Exhausted(Cidr),
    #[error("address {ip} is not in pool {pool}")]
    NotInPool { ip: Ipv4Addr, pool: Cidr },
    #[error("address {0} is already allocated")]
    Taken(Ipv4Addr),
    #[error("{0:?} is not an IPv4 address")]
    BadAddress(String),
}

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl FromStr for Cidr {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::Cidr(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        let cidr = Cidr { addr, len };
        if cidr.first() != u32::from(addr) {
            return Err(bad()); // host bits set: almost certainly a typo
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Cidr {
    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }
    fn first(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    fn last(&self) -> u32 {
        self.first() | !self.mask()
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == self.first()
    }
}

/// A pool handing out addresses of `cidr` except the network/broadcast addresses and `reserved`.
#[derive(Debug)]
pub struct Pool {
    cidr: Cidr,
    reserved: Vec<Cidr>,
    used: BTreeSet<u32>,
    next: u32,
}

impl Pool {
    pub fn new(cidr: Cidr, reserved: Vec<Cidr>) -> Self {
        Self {
            cidr,
            reserved,
            used: BTreeSet::new(),
            next: cidr.first(),
        }
    }

    fn usable(&self, ip: u32) -> bool {
        let addr = Ipv4Addr::from(ip);
        let edge = self.cidr.len < 31 && (ip == self.cidr.first() || ip == self.cidr.last());
        self.cidr.contains(addr) && !edge && !self.reserved.iter().any(|r| r.contains(addr))
    }

    /// Allocates the next free address, round-robin so a released address is not reused at once
    /// (a stale connection or endpoint would otherwise reach the wrong Pod).
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let size = u64::from(self.cidr.last() - self.cidr.first()) + 1;
        for _ in 0..size {
            let ip = self.next;
            self.next = if ip >= self.cidr.last() {
                self.cidr.first()
            } else {
                ip + 1
            };
            if self.usable(ip) && !self.used.contains(&ip) {
                self.used.insert(ip);
                return Ok(Ipv4Addr::from(ip));
            }
        }
        Err(IpamError::Exhausted(self.cidr))
    }

    /// Allocates a specific address (e.g. a Service's `spec.loadBalancerIP`, or one found in
    /// status at start-up).
    pub fn claim(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.usable(u32::from(ip)) {
            return Err(IpamError::NotInPool {
                ip,
                pool: self.cidr,
            });
        }
        if !self.used.insert(u32::from(ip)) {
            return Err(IpamError::Taken(ip));
        }
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.usable(u32::from(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs() {
        assert_eq!(
            "10.244.0.0/16".parse::<Cidr>().unwrap().to_string(),
            "10.244.0.0/16"
        );
        assert!("10.244.0.1/16".parse::<Cidr>().is_err());
        assert!("10.244.0.0".parse::<Cidr>().is_err());
        assert!("10.244.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn pod_pool_skips_node_range_and_recycles_late() {
        let mut pool = Pool::new(
            "10.244.0.0/16".parse().unwrap(),
            vec!["10.244.0.0/24".parse().unwrap()],
        );
        let a = pool.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 0));
        let b = pool.allocate().unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 244, 1, 1));
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(pool.claim(b), Err(IpamError::Taken(b)));
        assert!(pool.claim(Ipv4Addr::new(10, 244, 0, 7)).is_err());
    }

    #[test]
    fn small_pool_exhausts_and_wraps() {
        let mut pool = Pool::new("10.245.0.0/30".parse().unwrap(), vec![]);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 245, 0, 1), Ipv4Addr::new(10, 245, 0, 2))
        );
        assert!(matches!(pool.allocate(), Err(IpamError::Exhausted(_))));
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), a);
        assert!(!pool.contains(Ipv4Addr::new(10, 245, 0, 3)));
    }
}
