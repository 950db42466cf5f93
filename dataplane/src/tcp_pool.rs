//! Idle keep-alive connections to backends for the native path, one pool per worker thread.
//!
//! A connection is taken out of the pool for one exchange and put back when the response was
//! read to its end; in between it belongs to the client connection's task, which reads and
//! writes it directly (no connection task, no channel). The pool lives in a thread-local:
//! each worker is a single-threaded runtime, so there is no lock and no cross-thread hand-off.

use std::cell::{Cell, RefCell};
// Looked up twice per request (checkout, checkin): foldhash, not SipHash. The keys are the
// config's endpoints.
use foldhash::{HashMap, HashMapExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

// The limits of every pool of backend connections (this one and the hyper path's `h1_pool`).

/// By default a connect that takes longer than this fails, and the request moves on to another
/// endpoint (`BackendRt::failover`) or is answered 503 (a backend's `connectTimeout` sets its
/// own). Inside a cluster a connect takes well under a millisecond; one that takes a second is
/// to a Pod that is gone (its SYN unanswered), and a client's patience is a few seconds (was
/// 5 s, the whole of it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Data written to a backend and not acknowledged for this long fails the connection
/// (`TCP_USER_TIMEOUT`): a pooled connection to a Pod that vanished without a FIN or RST (force
/// deleted, its node gone) would otherwise hold the request until the kernel's retransmissions
/// give up, about 15 minutes. A live backend's kernel acknowledges within a round trip,
/// however slow the application is.
pub(crate) const UNACKED_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections unused for this long are closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per address: a burst of thousands of concurrent requests must not
/// leave thousands of upstream connections (and their kernel buffers) open for a minute.
pub(crate) const MAX_IDLE: usize = 256;
/// How often closed, expired and surplus connections are dropped.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(1);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>>> = RefCell::new(HashMap::new());
    static PRUNING: Cell<bool> = const { Cell::new(false) };
}

/// The most recently returned live idle connection to `addr`, if any.
pub fn checkout(addr: SocketAddr) -> Option<TcpStream> {
    POOL.with_borrow_mut(|pool| {
        let list = pool.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if is_open(&idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    })
}

/// Returns a connection whose last response was read to its end.
pub fn checkin(addr: SocketAddr, stream: TcpStream) {
    start_pruning();
    POOL.with_borrow_mut(|pool| {
        let list = pool.entry(addr).or_default();
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push(Idle {
            stream,
            since: Instant::now(),
        });
    });
}

/// A new TCP connection to a backend at `addr`, given up after `timeout` (every upstream path
/// dials through here, with its backend's connect timeout).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    // Small requests and answers: no Nagle delay between our writes.
    stream.set_nodelay(true)?;
    socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKED_TIMEOUT))?;
    Ok(stream)
}

/// Idle connections held by this thread (for tests).
pub fn idle_count(addr: SocketAddr) -> usize {
    POOL.with_borrow(|pool| pool.get(&addr).map_or(0, Vec::len))
}

/// An idle connection is usable if the backend has neither closed it nor sent anything.
/// tokio answers `WouldBlock` without a system call unless the socket became readable.
fn is_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Starts this thread's prune task once, on the runtime of the first exchange.
fn start_pruning() {
    if PRUNING.replace(true) {
        return;
    }
    tokio::spawn(async {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            prune(Instant::now());
        }
    });
}

/// Closes idle connections that expired or that the backend closed.
fn prune(now: Instant) {
    POOL.with_borrow_mut(|pool| {
        pool.retain(|_, list| {
            list.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && is_open(&i.stream));
            if list.capacity() > 2 * list.len() + 16 {
                list.shrink_to_fit();
            }
            !list.is_empty()
        });
    });
}
