//! UDP session counters (`crate::udp`): a few atomic increments per datagram, so plain atomics
//! as for TLS passthrough, no per-worker shards.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How a UDP session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpOutcome {
    /// No datagram either way for the idle timeout.
    Idle,
    /// Its port left the config (the listening socket closed).
    Removed,
    /// Cut by the data plane's exit (the drain timeout) before it went idle.
    Drained,
    /// Reading the backend's replies failed (an ICMP port unreachable, say).
    BackendError,
}

impl UdpOutcome {
    pub const ALL: [UdpOutcome; 4] = [
        UdpOutcome::Idle,
        UdpOutcome::Removed,
        UdpOutcome::Drained,
        UdpOutcome::BackendError,
    ];

    /// The metric label and access-log value.
    pub fn label(self) -> &'static str {
        match self {
            UdpOutcome::Idle => "idle",
            UdpOutcome::Removed => "removed",
            UdpOutcome::Drained => "drained",
            UdpOutcome::BackendError => "backend_error",
        }
    }
}

/// Why a datagram was dropped (UDP has no error answer): a client's, but for `SendFailed`,
/// which counts replies the listening socket would not take too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpDrop {
    /// The port's listener has no route.
    NoRoute,
    /// The backendRef chosen is one the controller found invalid (or none has weight).
    InvalidBackend,
    /// The backend has no usable endpoint, or no socket to one could be opened.
    NoEndpoint,
    /// A new client while the data plane already holds its session limit.
    SessionLimit,
    /// A new client while the data plane drains.
    Draining,
    /// The socket would not take it (a full send buffer, a pending ICMP error).
    SendFailed,
}

impl UdpDrop {
    pub const ALL: [UdpDrop; 6] = [
        UdpDrop::NoRoute,
        UdpDrop::InvalidBackend,
        UdpDrop::NoEndpoint,
        UdpDrop::SessionLimit,
        UdpDrop::Draining,
        UdpDrop::SendFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UdpDrop::NoRoute => "no_route",
            UdpDrop::InvalidBackend => "invalid_backend",
            UdpDrop::NoEndpoint => "no_endpoint",
            UdpDrop::SessionLimit => "session_limit",
            UdpDrop::Draining => "draining",
            UdpDrop::SendFailed => "send_failed",
        }
    }
}

/// Which way a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToBackend,
    BackendToClient,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::ClientToBackend, Direction::BackendToClient];

    pub fn label(self) -> &'static str {
        match self {
            Direction::ClientToBackend => "client_to_backend",
            Direction::BackendToClient => "backend_to_client",
        }
    }
}

#[derive(Debug, Default)]
pub struct Udp {
    /// Ended sessions per [`UdpOutcome`], indexed by its discriminant.
    ended: [AtomicU64; UdpOutcome::ALL.len()],
    /// Sessions open now, in every worker: the session limit is checked against it.
    pub active: AtomicI64,
    /// Relayed datagrams and their bytes per [`Direction`].
    datagrams: [AtomicU64; Direction::ALL.len()],
    bytes: [AtomicU64; Direction::ALL.len()],
    dropped: [AtomicU64; UdpDrop::ALL.len()],
}

impl Udp {
    pub fn relayed(&self, direction: Direction, bytes: usize) {
        self.datagrams[direction as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[direction as usize].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: UdpDrop) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn ended(&self, outcome: UdpOutcome) {
        self.ended[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions that ended with `outcome` so far.
    pub fn sessions(&self, outcome: UdpOutcome) -> u64 {
        self.ended[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn active(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Datagrams dropped for `reason` so far.
    pub fn drops(&self, reason: UdpDrop) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Datagrams relayed `direction` so far.
    pub fn datagrams(&self, direction: Direction) -> u64 {
        self.datagrams[direction as usize].load(Ordering::Relaxed)
    }

    pub(super) fn render(&self, s: &mut String) {
        s.push_str("# HELP pylon_udp_sessions_total UDP sessions by how they ended.\n# TYPE pylon_udp_sessions_total counter\n");
        for outcome in UdpOutcome::ALL {
            let _ = writeln!(
                s,
                "pylon_udp_sessions_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                self.sessions(outcome)
            );
        }
        let _ = writeln!(
            s,
            "# HELP pylon_udp_sessions_active UDP sessions open.\n# TYPE pylon_udp_sessions_active gauge\npylon_udp_sessions_active {}",
            self.active()
        );
        s.push_str("# HELP pylon_udp_datagrams_total Datagrams UDP sessions relayed, by direction.\n# TYPE pylon_udp_datagrams_total counter\n");
        for d in Direction::ALL {
            let _ = writeln!(
                s,
                "pylon_udp_datagrams_total{{direction=\"{}\"}} {}",
                d.label(),
                self.datagrams(d)
            );
        }
        s.push_str("# HELP pylon_udp_bytes_total Payload bytes UDP sessions relayed, by direction.\n# TYPE pylon_udp_bytes_total counter\n");
        for d in Direction::ALL {
            let _ = writeln!(
                s,
                "pylon_udp_bytes_total{{direction=\"{}\"}} {}",
                d.label(),
                self.bytes[d as usize].load(Ordering::Relaxed)
            );
        }
        s.push_str("# HELP pylon_udp_dropped_datagrams_total Datagrams dropped (UDP has no error answer), by reason.\n# TYPE pylon_udp_dropped_datagrams_total counter\n");
        for reason in UdpDrop::ALL {
            let _ = writeln!(
                s,
                "pylon_udp_dropped_datagrams_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.drops(reason)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_datagrams_and_drops_are_rendered_by_label() {
        let u = Udp::default();
        u.relayed(Direction::ClientToBackend, 5);
        u.relayed(Direction::ClientToBackend, 7);
        u.relayed(Direction::BackendToClient, 3);
        u.ended(UdpOutcome::Idle);
        u.dropped(UdpDrop::SessionLimit);
        u.active.store(2, Ordering::Relaxed);
        let mut text = String::new();
        u.render(&mut text);
        for line in [
            "pylon_udp_sessions_total{outcome=\"idle\"} 1\n",
            "pylon_udp_sessions_total{outcome=\"removed\"} 0\n",
            "pylon_udp_sessions_active 2\n",
            "pylon_udp_datagrams_total{direction=\"client_to_backend\"} 2\n",
            "pylon_udp_bytes_total{direction=\"client_to_backend\"} 12\n",
            "pylon_udp_bytes_total{direction=\"backend_to_client\"} 3\n",
            "pylon_udp_dropped_datagrams_total{reason=\"session_limit\"} 1\n",
            "pylon_udp_dropped_datagrams_total{reason=\"no_route\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
