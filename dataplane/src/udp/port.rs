//! One UDP port's task: receives every datagram of the listening socket, hands it to its
//! client's session or starts one (route, backendRef by weight, endpoint, connected socket).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::DATAGRAM;
use super::session::{Handle, Session, Slot};
use crate::backend::{BackendRt, Tried};
use crate::limits::Limits;
use crate::metrics::{Direction, UdpDrop};
use crate::state::Shared;
use crate::table::Target;

/// The sessions of one port and what starting one takes.
struct Port {
    socket: Arc<UdpSocket>,
    port: u16,
    shared: Arc<Shared>,
    limits: Limits,
    /// By client address, which a sender picks at will: SipHash (std), not foldhash.
    sessions: HashMap<SocketAddr, Handle>,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    next_id: u64,
    draining: bool,
}

/// Serves the UDP `port` on `socket` until aborted (the port left the config), or, once `stop`
/// is set, until its last session ended.
pub(super) async fn serve(
    socket: UdpSocket,
    port: u16,
    shared: Arc<Shared>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let (ended, mut ended_rx) = mpsc::unbounded_channel();
    let mut p = Port {
        socket: Arc::new(socket),
        port,
        shared,
        limits,
        sessions: HashMap::new(),
        ended,
        next_id: 0,
        draining: *stop.borrow(),
    };
    // One buffer for the port's life: a datagram is handed on before the next is received.
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        if p.draining && p.sessions.is_empty() {
            tracing::info!(port, "UDP listener drained");
            return;
        }
        tokio::select! {
            Some((client, id)) = ended_rx.recv() => {
                if p.sessions.get(&client).is_some_and(|s| s.id == id) {
                    p.sessions.remove(&client);
                }
            }
            // A dropped sender stops the listeners as `true` would.
            r = stop.changed(), if !p.draining => p.draining = r.is_err() || *stop.borrow(),
            r = p.socket.recv_from(&mut buf) => match r {
                Ok((n, client)) => p.datagram(&buf[..n], client).await,
                Err(e) => tracing::debug!(port, error = %e, "udp: receive failed"),
            },
        }
    }
}

impl Port {
    async fn datagram(&mut self, data: &[u8], client: SocketAddr) {
        if let Some(s) = self.sessions.get(&client) {
            // A session that ended but whose end the loop has not seen yet takes nothing more.
            if !s.task.is_finished() {
                match s.upstream.send(data).await {
                    Ok(_) => {
                        s.activity
                            .relayed(&self.shared, Direction::ClientToBackend, data.len())
                    }
                    Err(_) => self.shared.metrics.udp.dropped(UdpDrop::SendFailed),
                }
                return;
            }
            self.sessions.remove(&client);
        }
        match self.start(data, client).await {
            Ok(handle) => {
                self.sessions.insert(client, handle);
            }
            Err(reason) => self.shared.metrics.udp.dropped(reason),
        }
    }

    /// A new session for `client`, `data` sent as its first datagram.
    async fn start(&mut self, data: &[u8], client: SocketAddr) -> Result<Handle, UdpDrop> {
        if self.draining {
            return Err(UdpDrop::Draining);
        }
        let (route, backend) = choose(&self.shared, self.port)?;
        let slot =
            Slot::take(&self.shared, self.limits.max_udp_sessions).ok_or(UdpDrop::SessionLimit)?;
        let (upstream, addr) = connect(&backend).ok_or(UdpDrop::NoEndpoint)?;
        drop(backend);
        // Awaited, not tried: a new socket is writable only once the reactor has said so.
        upstream.send(data).await.map_err(|_| UdpDrop::SendFailed)?;
        self.next_id += 1;
        let session = Session::new(
            slot,
            self.next_id,
            self.port,
            client,
            route,
            addr,
            self.ended.clone(),
        );
        session
            .activity
            .relayed(&self.shared, Direction::ClientToBackend, data.len());
        tracing::debug!(port = self.port, %client, backend = %addr, "udp: session started");
        Ok(session.spawn(
            self.socket.clone(),
            Arc::new(upstream),
            self.limits.idle_timeout,
        ))
    }
}

/// The route and backend of a new session on `port`: the port's route, a backendRef by weight.
fn choose(shared: &Shared, port: u16) -> Result<(Arc<str>, Arc<BackendRt>), UdpDrop> {
    // Borrowed only for the choice: a session holds nothing of the table, so a config swap
    // frees the old one however long the session lasts.
    let guard = shared.table_guard();
    let rule = guard
        .as_ref()
        .and_then(|t| t.udp_ports.get(&port))
        .and_then(|p| p.rule.as_ref())
        .ok_or(UdpDrop::NoRoute)?;
    match rule.pick_random() {
        Some(Target::Backend { backend, .. }) => Ok((rule.route.clone(), backend.clone())),
        Some(Target::Invalid) | None => Err(UdpDrop::InvalidBackend),
    }
}

/// A socket connected to an endpoint of `backend`, trying others (as HTTP requests and
/// passthrough connects do) when none can be opened to one; `None` if it has none. Nothing
/// answers a UDP connect, so an endpoint that is there is never marked healthy by one.
fn connect(backend: &BackendRt) -> Option<(UdpSocket, SocketAddr)> {
    let mut ep = backend.pick()?;
    let mut tried = Tried::first(ep);
    loop {
        let addr = backend.endpoints[ep];
        match open(addr) {
            Ok(s) => return Some((s, addr)),
            Err(e) => {
                tracing::debug!(backend = %backend.name, %addr, error = %e, "udp: no socket");
                ep = backend.failover(&mut tried)?;
            }
        }
    }
}

/// An ephemeral UDP socket connected to `addr`: the kernel then passes only `addr`'s datagrams
/// up, and reports its ICMP errors.
fn open(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}
