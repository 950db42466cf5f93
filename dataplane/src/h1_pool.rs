//! The plain HTTP/1.1 upstream pool: keep-alive connections to one endpoint address, driven by
//! `hyper::client::conn::http1`, one pool per worker thread.
//!
//! Why not hyper-util's pooled legacy `Client`: per request it clones the pool key (scheme and
//! authority), locks its pool, boxes a checkout/connect future, and after each answer spawns a
//! task that waits for the connection to become idle and checks it back in. Here a connection is
//! never checked out: the pool keeps every connection's `SendRequest`, and a request goes to the
//! first one whose previous exchange is finished (`is_ready`, an atomic load), in place — hyper's
//! connection task flips it back to ready when the answer has been read, so there is no check-in.
//! Scanning from the front reuses the same few connections under light load and lets the tail
//! fall idle, where [`H1Pool::prune`] closes it.

use foldhash::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::body::{Body, empty};
use crate::tcp_pool::{self as upstream, IDLE_TIMEOUT, MAX_IDLE, PRUNE_EVERY};

/// Requests to a connection that turned out dead before the request was written are resent on
/// another connection this many times (a backend closing an idle keep-alive connection races
/// with our reuse of it).
const RESEND_ATTEMPTS: usize = 3;

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    // `#[source]`: the proxy walks the chain to tell a client body's failure from the backend's.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connect: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("upstream: {0}")]
    Upstream(#[source] hyper::Error),
}

impl SendError {
    /// True if no connection could be made (nothing reached the backend).
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::Handshake(_))
    }
}

struct Conn {
    tx: http1::SendRequest<Body>,
    used: Instant,
}

/// One worker's connections, by endpoint address.
#[derive(Default)]
pub struct H1Pool {
    conns: Mutex<HashMap<SocketAddr, Vec<Conn>>>,
    /// Whether the prune task runs (started by the first request, on the worker's runtime).
    pruning: std::sync::atomic::AtomicBool,
}

impl H1Pool {
    /// Sends `req` (origin-form URI, Host set) to `addr` on an idle pooled connection or a new
    /// one (whose connect is given up after `connect_timeout`).
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        connect_timeout: Duration,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        self.start_pruning();
        for _ in 0..RESEND_ATTEMPTS {
            let pending = {
                let mut conns = self.conns.lock().expect("pool poisoned");
                conns.get_mut(&addr).and_then(|list| {
                    let c = list.iter_mut().find(|c| c.tx.is_ready())?;
                    c.used = Instant::now();
                    Some(c.tx.try_send_request(req_take(&mut req)))
                })
            };
            let Some(pending) = pending else { break };
            match pending.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing; try another one.
                    Some(r) => req = r,
                    None => return Err(SendError::Upstream(e.into_error())),
                },
            }
        }
        let mut tx = self.connect(addr, connect_timeout).await?;
        let pending = tx.send_request(req);
        self.conns
            .lock()
            .expect("pool poisoned")
            .entry(addr)
            .or_default()
            .push(Conn {
                tx,
                used: Instant::now(),
            });
        pending.await.map_err(SendError::Upstream)
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<http1::SendRequest<Body>, SendError> {
        let tcp = upstream::connect(addr, timeout)
            .await
            .map_err(SendError::Connect)?;
        let (tx, conn) = http1::Builder::new()
            .max_buf_size(crate::fields::MAX_RESPONSE_HEAD)
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(SendError::Handshake)?;
        // `with_upgrades`: a 101 answer hands the connection to the WebSocket tunnel.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }

    /// Starts the prune task once, on the runtime of the first request; it ends with the pool.
    fn start_pruning(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.pruning.load(Ordering::Relaxed) || self.pruning.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                pool.prune(Instant::now());
            }
        });
    }

    /// Drops closed connections, idle ones past [`IDLE_TIMEOUT`], and idle ones beyond
    /// [`MAX_IDLE`] per address that were not used since the last prune (dropping a
    /// `SendRequest` closes its connection once any exchange on it is done).
    pub fn prune(&self, now: Instant) {
        let mut conns = self.conns.lock().expect("pool poisoned");
        conns.retain(|_, list| {
            list.retain(|c| !c.tx.is_closed() && now.duration_since(c.used) < IDLE_TIMEOUT);
            let mut idle = 0;
            list.retain(|c| {
                let recent = now.duration_since(c.used) < PRUNE_EVERY;
                if !c.tx.is_ready() || recent {
                    return true;
                }
                idle += 1;
                idle <= MAX_IDLE
            });
            if list.capacity() > 2 * list.len() + 16 {
                list.shrink_to_fit();
            }
            !list.is_empty()
        });
    }

    /// Connections held, and how many of them are ready for a request (for tests).
    pub fn counts(&self) -> (usize, usize) {
        let conns = self.conns.lock().expect("pool poisoned");
        let all = conns.values().flatten();
        let ready = all.clone().filter(|c| c.tx.is_ready()).count();
        (conns.values().map(Vec::len).sum(), ready)
    }
}

/// Moves the request out, leaving an empty placeholder (it is put back if the send fails
/// before anything was written).
fn req_take(req: &mut Request<Body>) -> Request<Body> {
    std::mem::replace(req, Request::new(empty()))
}
