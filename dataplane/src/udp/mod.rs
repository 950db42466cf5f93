//! UDP listeners (protocol `UDP`, UDPRoutes). Each client address is a session: its first
//! datagram picks a backendRef of the listener's route by weight and an endpoint of it (as TLS
//! passthrough does: outlier health, failover when no socket to one can be opened), opens a
//! connected ephemeral socket to that endpoint and sends the datagram; a task per session sends
//! the endpoint's replies back through the listening socket, so the client hears them from the
//! address it sent to. Later datagrams of that address go the same way.
//!
//! A session ends when no datagram went either way for `idle_timeout` (the limit idle
//! keep-alive connections and passthrough relays have: nothing in UDP says a client is done).
//! At most `max_udp_sessions` are open in the data plane; a new client's datagrams beyond that,
//! and those no route or endpoint takes, are dropped and counted (UDP has no error answer).
//!
//! A config swap leaves running sessions on their endpoint (they hold nothing of the table);
//! new ones follow the new config. A port that leaves the config closes its socket and ends
//! its sessions. Draining (the listeners' stop) starts no new session: running ones go on
//! until idle (or the drain timeout ends the process), then the socket closes.
//!
//! With several workers each binds the port with `SO_REUSEPORT`; the kernel hashes a client's
//! address to one of the sockets, so its datagrams and its session stay on one worker.

mod port;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::limits::Limits;
use crate::state::Shared;

/// Largest datagram received: any UDP payload fits (65,507 bytes over IPv4).
const DATAGRAM: usize = 64 * 1024;

/// The UDP sockets of one listener manager, kept in line with the current table.
pub struct Listeners {
    shared: Arc<Shared>,
    limits: Limits,
    bound: HashMap<u16, JoinHandle<()>>,
}

impl Listeners {
    pub fn new(shared: Arc<Shared>, limits: Limits) -> Self {
        Listeners {
            shared,
            limits,
            bound: HashMap::new(),
        }
    }

    /// Binds the table's new UDP ports on `bind` and closes removed ones (ending their
    /// sessions); `stop` stops new sessions. Returns the bind errors (those ports stay
    /// unbound).
    pub fn sync(
        &mut self,
        bind: IpAddr,
        reuse_port: bool,
        stop: &watch::Receiver<bool>,
    ) -> Vec<String> {
        let wanted: Vec<u16> = self
            .shared
            .table()
            .map(|t| t.udp_ports.keys().copied().collect())
            .unwrap_or_default();
        self.bound.retain(|port, task| {
            let keep = wanted.contains(port);
            if !keep {
                tracing::info!(port, "unbinding UDP listener");
                task.abort();
            }
            keep
        });
        let mut errors = Vec::new();
        for port in wanted {
            if self.bound.contains_key(&port) {
                continue;
            }
            match bind_udp(SocketAddr::new(bind, port), reuse_port) {
                Ok(socket) => {
                    tracing::info!(port, "listening (UDP)");
                    let task = tokio::spawn(port::serve(
                        socket,
                        port,
                        self.shared.clone(),
                        self.limits.clone(),
                        stop.clone(),
                    ));
                    self.bound.insert(port, task);
                }
                Err(e) => {
                    tracing::error!(port, error = %e, "cannot bind UDP");
                    errors.push(format!("UDP port {port}: {e}"));
                }
            }
        }
        self.shared.sockets.lock().expect("poisoned").udp_bound =
            self.bound.keys().copied().collect();
        errors
    }
}

/// A listening UDP socket. No `SO_REUSEADDR`: for UDP it would let another socket bind the
/// same address and take its datagrams (and UDP has no TIME_WAIT to wait out on restart).
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
