//! The limits every client connection is served with, whichever engine serves it.

use std::sync::Arc;
use std::time::Duration;

use crate::head_budget::HeadBudget;

/// Connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line + headers) accepted, bytes; larger → 431.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head (slowloris) and for a TLS handshake.
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub idle_timeout: Duration,
    /// Connections above this are closed on accept.
    pub max_connections: usize,
    /// UDP sessions open at once in the data plane (all ports, all workers); datagrams of new
    /// clients beyond it are dropped.
    pub max_udp_sessions: usize,
    /// The memory all unfinished request heads may hold beyond their first read chunk, shared
    /// by every listener that is given a clone of these limits (`head_budget.rs`).
    pub head_budget: Arc<HeadBudget>,
}

/// [`Limits::head_budget`]'s size by default: 4,096 heads grown by 8 KiB, or 512 grown to the
/// 64 KiB limit, at once.
pub const DEFAULT_PENDING_HEAD_BYTES: usize = 32 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_udp_sessions: 10_000,
            head_budget: HeadBudget::new(DEFAULT_PENDING_HEAD_BYTES),
        }
    }
}
