//! Listener sockets: binds a socket per configured port (and unbinds removed ones) whenever a
//! new table is swapped in; serves HTTP/1.1, h2c and TLS (SNI certificate, ALPN h2) with the
//! connection limits, and the ports whose connections are relayed as bytes (`crate::l4`): TLS
//! (passthrough or terminating, by SNI) and TCP; drains gracefully.
//! UDP ports are bound beside them (`crate::udp`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::hyper_serve::{Versions, serve_http};
use crate::lazy_tcp::LazyTcp;
use crate::limits::Limits;
use crate::metrics::L4Protocol;
use crate::native::ClientIo;
use crate::proxy::{ConnInfo, Transport};
use crate::state::Shared;
use pylon_config::ListenerProtocol;

/// Which code serves HTTP/1.1 client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1 {
    /// `crate::native`: one task per connection reads and writes both sides; what it does not
    /// serve goes to hyper.
    #[default]
    Native,
    /// hyper for every connection (the reference behaviour, and a way out should the native
    /// path misbehave).
    Hyper,
}

/// What every connection of a listener is served with.
#[derive(Clone)]
struct Serving {
    shared: Arc<Shared>,
    limits: Limits,
    drain: watch::Receiver<bool>,
    http1: Http1,
}

impl Serving {
    /// Serves an accepted (and, for TLS, handshaken) connection: the native HTTP/1.1 path, or
    /// hyper for HTTP/2 (`h2`: negotiated by ALPN) and when `--http1 hyper` asks for it.
    async fn serve<I: ClientIo>(self, io: I, info: Arc<ConnInfo>, h2: bool) {
        let Serving {
            shared,
            limits,
            drain,
            http1,
        } = self;
        if http1 == Http1::Native && !h2 {
            crate::native::serve(io, info, &shared, &limits, drain).await;
        } else {
            io.set_nodelay();
            let versions = Versions::of(&info.transport, h2);
            // Boxed: hyper's state would otherwise make every connection's task several kB.
            Box::pin(serve_http(
                TokioIo::new(io),
                info,
                &shared,
                &limits,
                drain,
                versions,
            ))
            .await;
        }
    }
}

/// Keeps the bound sockets in line with the current table.
pub struct ListenerManager {
    serving: Serving,
    /// When to close the listening sockets; the connections' `drain` unless told otherwise.
    stop_accepting: watch::Receiver<bool>,
    bind: IpAddr,
    bound: HashMap<u16, (JoinHandle<()>, SocketAddr)>,
    reuse_port: bool,
    udp: crate::udp::Listeners,
}

impl ListenerManager {
    pub fn new(
        shared: Arc<Shared>,
        bind: IpAddr,
        limits: Limits,
        drain: watch::Receiver<bool>,
    ) -> Self {
        shared.sockets.lock().expect("poisoned").bind = Some(bind);
        let udp = crate::udp::Listeners::new(shared.clone(), limits.clone());
        ListenerManager {
            stop_accepting: drain.clone(),
            serving: Serving {
                shared,
                limits,
                drain,
                http1: Http1::default(),
            },
            bind,
            bound: HashMap::new(),
            reuse_port: false,
            udp,
        }
    }

    /// Chooses the HTTP/1.1 engine.
    pub fn http1(mut self, http1: Http1) -> Self {
        self.serving.http1 = http1;
        self
    }

    /// Closes the listening sockets on `stop` rather than on the connections' drain signal, so
    /// a caller can make sure no socket still accepts before it tells connections to close
    /// (else a client may find its idle connection closed and its next dial still accepted,
    /// then dropped).
    pub fn stop_accepting_on(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop_accepting = stop;
        self
    }

    /// Binds with `SO_REUSEPORT` so one manager per worker thread can listen on the same ports
    /// and the kernel spreads new connections over them (nginx's model: no shared accept queue,
    /// no cross-thread hand-off).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Binds new ports and unbinds removed ones; returns the bind errors (ports stay unbound).
    pub async fn sync(&mut self) -> Vec<String> {
        let wanted: Vec<u16> = self
            .serving
            .shared
            .table()
            .map(|t| t.ports.keys().copied().collect())
            .unwrap_or_default();
        self.bound.retain(|port, (task, _)| {
            let keep = wanted.contains(port);
            if !keep {
                tracing::info!(port, "unbinding listener");
                task.abort();
            }
            keep
        });
        let mut errors = Vec::new();
        for port in wanted {
            if self.bound.contains_key(&port) {
                continue;
            }
            match bind(SocketAddr::new(self.bind, port), self.reuse_port) {
                Ok(l) => {
                    let addr = l
                        .get_ref()
                        .local_addr()
                        .unwrap_or(SocketAddr::new(self.bind, port));
                    tracing::info!(%addr, "listening");
                    let task = tokio::spawn(accept_loop(l, port, self.serving.clone()));
                    self.bound.insert(port, (task, addr));
                }
                Err(e) => {
                    tracing::error!(port, error = %e, "cannot bind");
                    errors.push(format!("port {port}: {e}"));
                }
            }
        }
        self.serving.shared.sockets.lock().expect("poisoned").bound =
            self.bound.keys().copied().collect();
        errors.extend(
            self.udp
                .sync(self.bind, self.reuse_port, &self.stop_accepting),
        );
        errors
    }

    /// Follows table changes until told to stop accepting; returns once every listening TCP
    /// socket is closed (UDP ones stay open for their sessions until these idle out).
    pub async fn run(mut self) {
        let mut changes = self.serving.shared.subscribe();
        loop {
            let errors = self.sync().await;
            if !errors.is_empty() {
                // Surface bind failures on /ready; the rest of the config keeps serving.
                *self.serving.shared.last_error.lock().expect("poisoned") =
                    Some(format!("cannot bind: {}", errors.join("; ")));
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { break },
                _ = self.stop_accepting.wait_for(|s| *s) => break,
            }
        }
        for (_, (task, _)) in self.bound.drain() {
            task.abort();
            // The socket closes when the aborted task is dropped, which happens here.
            let _ = task.await;
        }
    }
}

/// A listening socket; `SO_REUSEADDR` always (restarts must not wait for TIME_WAIT), and
/// `SO_REUSEPORT` when several workers share the port. Held as mio's listener under an
/// `AsyncFd` rather than as tokio's `TcpListener`, whose `accept` registers every accepted
/// socket with the reactor: the accepted ones start as [`LazyTcp`]s.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<AsyncFd<mio::net::TcpListener>> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    // `into_std` leaves it non-blocking, as mio needs.
    let listener = mio::net::TcpListener::from_std(socket.listen(1024)?.into_std()?);
    register(listener)
}

#[allow(unsafe_code)]
fn register(listener: mio::net::TcpListener) -> std::io::Result<AsyncFd<mio::net::TcpListener>> {
    // SAFETY: mio's listener owns its descriptor (closed only when it is dropped, which the
    // `AsyncFd` does last) and always reports that same one.
    Ok(unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }?)
}

/// The next connection on `listener` (`accept4`, non-blocking, not registered).
async fn accept(
    listener: &AsyncFd<mio::net::TcpListener>,
) -> std::io::Result<(mio::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        if let Ok(accepted) = ready.try_io(|l| l.get_ref().accept()) {
            return accepted;
        }
    }
}

async fn accept_loop(listener: AsyncFd<mio::net::TcpListener>, port: u16, serving: Serving) {
    let (shared, max) = (&serving.shared, serving.limits.max_connections as i64);
    loop {
        let (stream, peer) = match accept(&listener).await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Count the connection before spawning so a burst of accepts cannot overshoot the cap.
        let active = shared
            .metrics
            .active_connections
            .fetch_add(1, Ordering::Relaxed);
        if active >= max {
            shared
                .metrics
                .active_connections
                .fetch_sub(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        shared
            .metrics
            .peak_connections
            .fetch_max(active + 1, Ordering::Relaxed);
        let (shared, serving) = (shared.clone(), serving.clone());
        // Boxed: the future is ~3 kB (its deepest state), and tokio moves a task's future by
        // value several times while spawning it; built in its box, it is written once.
        tokio::spawn(Box::pin(async move {
            serve_connection(stream, peer, port, serving).await;
            shared
                .metrics
                .active_connections
                .fetch_sub(1, Ordering::Relaxed);
        }));
    }
}

async fn serve_connection(
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    port: u16,
    serving: Serving,
) {
    let (protocol, tls) = serving
        .shared
        .table_guard()
        .as_ref()
        .and_then(|t| t.ports.get(&port))
        .map_or((ListenerProtocol::Http, None), |p| {
            (p.protocol, p.tls.clone())
        });
    let l4 = match protocol {
        ListenerProtocol::Tls => Some(L4Protocol::Tls),
        ListenerProtocol::Tcp => Some(L4Protocol::Tcp),
        _ => None,
    };
    if let Some(l4) = l4 {
        // TLS reads the ClientHello at once, TCP connects to its backend at once: registered
        // from the start, like a handshake. No port config here: for TLS, which listener, and
        // so which certificates if any, is the SNI name's.
        let Ok(stream) = TcpStream::from_std(stream.into()) else {
            return;
        };
        let Serving { shared, limits, .. } = serving;
        return Box::pin(crate::l4::serve(stream, peer, port, l4, &shared, &limits)).await;
    }
    // The TLS path is boxed: its state machine is several kB, and an unboxed one would make
    // every connection's task that big (allocated and moved on each accept).
    if let Some(cfg) = tls {
        // A handshake waits for the client at least once: registered from the start.
        let Ok(stream) = TcpStream::from_std(stream.into()) else {
            return;
        };
        return Box::pin(serve_tls(stream, cfg, peer, port, serving)).await;
    }
    let info = Arc::new(ConnInfo::new(port, peer, Transport::Plain));
    serving.serve(LazyTcp::new(stream), info, false).await;
}

async fn serve_tls(
    stream: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    port: u16,
    serving: Serving,
) {
    let _ = stream.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let handshake = acceptor.accept(stream);
    let Ok(Ok(tls)) = tokio::time::timeout(serving.limits.header_read_timeout, handshake).await
    else {
        return;
    };
    let sni = tls
        .get_ref()
        .1
        .server_name()
        .map(|s| s.to_ascii_lowercase());
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let info = Arc::new(ConnInfo::new(port, peer, Transport::Tls { sni }));
    serving.serve(tls, info, h2).await;
}
