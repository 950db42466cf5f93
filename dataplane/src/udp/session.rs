//! One UDP session: what it relayed each way and when it last did, the task that sends the
//! endpoint's replies to the client, and its counting and log line when it ends.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::DATAGRAM;
use crate::accesslog::UdpSessionLine;
use crate::idle::LastSeen;
use crate::metrics::{Direction, UdpDrop, UdpOutcome};
use crate::state::Shared;

thread_local! {
    /// Replies are read into this and sent on at once (no await between), so one buffer per
    /// worker thread serves all its sessions: one per session would hold 640 MiB at 10,000.
    static REPLY: RefCell<Box<[u8]>> = RefCell::new(vec![0; DATAGRAM].into_boxed_slice());
}

/// Datagrams and bytes each way, and the time of the last one: written by the port's task
/// (client → backend) and the session's (backend → client).
#[derive(Debug)]
pub(super) struct Activity {
    /// When a datagram last went either way.
    seen: LastSeen,
    datagrams: [AtomicU64; Direction::ALL.len()],
    bytes: [AtomicU64; Direction::ALL.len()],
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            seen: LastSeen::new(),
            datagrams: Default::default(),
            bytes: Default::default(),
        })
    }

    /// Counts a datagram relayed `direction`, here and in the data plane's metrics.
    pub(super) fn relayed(&self, shared: &Shared, direction: Direction, bytes: usize) {
        self.datagrams[direction as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[direction as usize].fetch_add(bytes as u64, Ordering::Relaxed);
        self.seen.touch();
        shared.metrics.udp.relayed(direction, bytes);
    }

    fn count(&self, direction: Direction) -> (u64, u64) {
        (
            self.datagrams[direction as usize].load(Ordering::Relaxed),
            self.bytes[direction as usize].load(Ordering::Relaxed),
        )
    }
}

/// A place in the data plane's session count, given back when dropped.
pub(super) struct Slot(Arc<Shared>);

impl Slot {
    /// A place if fewer than `max` sessions are open. Counted before the session exists, so a
    /// burst of new clients cannot overshoot the limit.
    pub(super) fn take(shared: &Arc<Shared>, max: usize) -> Option<Slot> {
        let active = &shared.metrics.udp.active;
        if active.fetch_add(1, Ordering::Relaxed) >= max as i64 {
            active.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.metrics.udp.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running session as its port holds it. Dropping it (the port closed) ends the session.
pub(super) struct Handle {
    /// Tells this session from a later one of the same client address.
    pub id: u64,
    pub upstream: Arc<UdpSocket>,
    pub activity: Arc<Activity>,
    pub task: tokio::task::JoinHandle<()>,
    _removed: oneshot::Sender<()>,
}

/// What a session's end reports: counted and logged on drop, so that a session cut by the
/// runtime's end (the drain timeout) is reported too.
pub(super) struct Session {
    slot: Slot,
    id: u64,
    port: u16,
    client: SocketAddr,
    route: Arc<str>,
    backend: SocketAddr,
    pub activity: Arc<Activity>,
    /// Where the port learns that the session ended (client address, id).
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    /// Until the session says otherwise, an end it did not see coming: the process's.
    outcome: UdpOutcome,
}

impl Session {
    pub(super) fn new(
        slot: Slot,
        id: u64,
        port: u16,
        client: SocketAddr,
        route: Arc<str>,
        backend: SocketAddr,
        ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    ) -> Session {
        Session {
            slot,
            id,
            port,
            client,
            route,
            backend,
            activity: Activity::new(),
            ended,
            outcome: UdpOutcome::Drained,
        }
    }

    /// Runs the session in a task of its own: replies from `upstream` go to the client through
    /// `listener` until it idles for `idle`, reading fails, or the returned handle is dropped.
    pub(super) fn spawn(
        self,
        listener: Arc<UdpSocket>,
        upstream: Arc<UdpSocket>,
        idle: Duration,
    ) -> Handle {
        let (removed_tx, removed) = oneshot::channel();
        let (id, activity) = (self.id, self.activity.clone());
        let task = tokio::spawn(self.run(listener, upstream.clone(), idle, removed));
        Handle {
            id,
            upstream,
            activity,
            task,
            _removed: removed_tx,
        }
    }

    async fn run(
        mut self,
        listener: Arc<UdpSocket>,
        upstream: Arc<UdpSocket>,
        idle: Duration,
        removed: oneshot::Receiver<()>,
    ) {
        let shared = self.slot.0.clone();
        let activity = self.activity.clone();
        let client = self.client;
        let replies = async {
            loop {
                if upstream.readable().await.is_err() {
                    return UdpOutcome::BackendError;
                }
                if let Err(e) = reply(&upstream, &listener, client, &shared, &activity) {
                    tracing::debug!(%client, error = %e, "udp: reading the backend failed");
                    return UdpOutcome::BackendError;
                }
            }
        };
        self.outcome = tokio::select! {
            outcome = replies => outcome,
            () = self.activity.seen.until_idle(idle) => UdpOutcome::Idle,
            // Only ever closed, never sent on: the port let go of the session.
            _ = removed => UdpOutcome::Removed,
        };
    }
}

/// Sends the endpoint's next reply (if one is there) to `client`; a reply the listening socket
/// will not take now is dropped, as a full network would. Errs if reading failed.
fn reply(
    upstream: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    shared: &Shared,
    activity: &Activity,
) -> std::io::Result<()> {
    REPLY.with_borrow_mut(|buf| {
        let n = match upstream.try_recv(buf) {
            Ok(n) => n,
            // Readiness was stale: wait for the next.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        match listener.try_send_to(&buf[..n], client) {
            Ok(_) => activity.relayed(shared, Direction::BackendToClient, n),
            Err(_) => shared.metrics.udp.dropped(UdpDrop::SendFailed),
        }
        Ok(())
    })
}

impl Drop for Session {
    fn drop(&mut self) {
        let shared = &self.slot.0;
        shared.metrics.udp.ended(self.outcome);
        let _ = self.ended.send((self.client, self.id));
        if !shared.access_log.load(Ordering::Relaxed) {
            return;
        }
        let (datagrams_from_client, bytes_from_client) =
            self.activity.count(Direction::ClientToBackend);
        let (datagrams_to_client, bytes_to_client) =
            self.activity.count(Direction::BackendToClient);
        shared.log.log(&UdpSessionLine {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            peer: self.client,
            port: self.port,
            route: &self.route,
            backend: self.backend,
            datagrams_from_client,
            datagrams_to_client,
            bytes_from_client,
            bytes_to_client,
            duration_ms: self.activity.seen.start().elapsed().as_secs_f64() * 1000.0,
            outcome: self.outcome.label(),
        });
    }
}
