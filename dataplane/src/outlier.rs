//! Passive health of a backend's endpoints: an endpoint that keeps refusing or timing out
//! connects is ejected for a while, so requests stop paying for it (Envoy's outlier detection
//! on consecutive gateway failures, for connects only).
//!
//! Why connects only: a failed connect is the one failure that is certainly the endpoint's
//! and certainly left the request unsent, so it can both eject and be retried elsewhere. A
//! Pod that was just deleted (its EndpointSlice not yet updated) or a node gone away shows up
//! exactly this way: refused, or no answer to the SYN.
//!
//! An ejection lasts [`EJECT_FOR`], doubled for each ejection in a row (up to [`MAX_EJECT`]);
//! one successful connect ends the streak. If every endpoint is ejected, all are used again:
//! better a chance than a certain 503.
//!
//! An endpoint's health outlives the config: a new config (an endpoint added or removed
//! elsewhere in the backend, a Pod of it turning ready) keeps it for the addresses that stay
//! ([`Health::keeping`]), else every EndpointSlice update would end the ejections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Consecutive connect failures that eject an endpoint.
pub const EJECT_AFTER: u32 = 3;
/// The first ejection's length.
pub const EJECT_FOR: Duration = Duration::from_secs(10);
/// The longest ejection.
pub const MAX_EJECT: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Endpoint {
    /// Connect failures since the last success.
    failures: AtomicU32,
    /// Ejections since the last success.
    ejections: AtomicU32,
    /// Milliseconds since [`epoch`] until which the endpoint is not picked; 0 = never ejected.
    until_ms: AtomicU64,
}

/// The health of each of a backend's endpoints, by index. Each is shared with the tables of
/// earlier configs that had the same address, so what requests still running on them learn
/// counts too.
#[derive(Debug, Default)]
pub struct Health {
    endpoints: Box<[Arc<Endpoint>]>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Health {
    pub fn new(n: usize) -> Health {
        Health {
            endpoints: (0..n).map(|_| Arc::default()).collect(),
        }
    }

    /// The health of endpoints `addrs`: that of `previous` (its endpoints' addresses, and
    /// their health) for the addresses it had, fresh for the others.
    pub fn keeping(addrs: &[SocketAddr], previous: (&[SocketAddr], &Health)) -> Health {
        let (old_addrs, old) = previous;
        let old: std::collections::HashMap<&SocketAddr, &Arc<Endpoint>> =
            old_addrs.iter().zip(old.endpoints.iter()).collect();
        Health {
            endpoints: addrs
                .iter()
                .map(|a| old.get(a).map_or_else(Arc::default, |e| Arc::clone(e)))
                .collect(),
        }
    }

    /// Whether endpoint `ep` may be picked now.
    pub fn available(&self, ep: usize) -> bool {
        let until = self.endpoints[ep].until_ms.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    /// A connect to `ep` failed; true if this ejected it.
    pub fn connect_failed(&self, ep: usize) -> bool {
        let e = &self.endpoints[ep];
        let failures = e.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < EJECT_AFTER || !self.available(ep) {
            return false;
        }
        e.failures.store(0, Ordering::Relaxed);
        let streak = e.ejections.fetch_add(1, Ordering::Relaxed).min(8);
        let length = (EJECT_FOR * (1 << streak)).min(MAX_EJECT);
        e.until_ms
            .store(now_ms() + length.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(
            endpoint = ep,
            ?length,
            "endpoint ejected after {EJECT_AFTER} failed connects"
        );
        true
    }

    /// A connect to `ep` succeeded: its failure streak ends.
    pub fn connected(&self, ep: usize) {
        let e = &self.endpoints[ep];
        // Loads first: the common case (a healthy endpoint) writes nothing.
        if e.failures.load(Ordering::Relaxed) != 0 {
            e.failures.store(0, Ordering::Relaxed);
        }
        if e.ejections.load(Ordering::Relaxed) != 0 {
            e.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Whether endpoint `ep` is ejected now (for tests and metrics).
    pub fn ejected(&self, ep: usize) -> bool {
        !self.available(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_connect_failures_eject_and_a_success_resets() {
        let h = Health::new(2);
        assert!(!h.connect_failed(0));
        h.connected(0);
        assert!(!h.connect_failed(0));
        assert!(!h.connect_failed(0));
        assert!(h.available(0), "two in a row after a success do not eject");
        assert!(h.connect_failed(0), "the third in a row does");
        assert!(!h.available(0) && h.ejected(0));
        assert!(h.available(1), "other endpoints are unaffected");
        // Failures while ejected (a panic-mode pick) do not extend it.
        for _ in 0..EJECT_AFTER {
            assert!(!h.connect_failed(0));
        }
    }

    #[test]
    fn health_is_kept_by_address_across_configs() {
        let addr = |i: u8| SocketAddr::from(([10, 0, 0, i], 80));
        let (a, b, c) = (addr(1), addr(2), addr(3));
        let old = Health::new(2);
        for _ in 0..EJECT_AFTER {
            old.connect_failed(1);
        }
        old.connect_failed(0);
        // b stays (now at index 0), a is gone, c is new.
        let new = Health::keeping(&[b, c], (&[a, b], &old));
        assert!(new.ejected(0), "b's ejection is kept");
        assert!(!new.ejected(1), "c starts healthy");
        // Shared: a failure counted on the old table (a request still running on it) counts.
        let again = Health::keeping(&[a, b], (&[b, c], &new));
        assert!(
            !again.ejected(0),
            "a came back fresh: its old state was dropped with it"
        );
        assert!(again.ejected(1));
        again.connected(1);
        assert_eq!(
            old.endpoints[1].ejections.load(Ordering::Relaxed),
            0,
            "one state per address, whichever table holds it"
        );
    }
}
