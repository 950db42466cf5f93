//! TLS passthrough (protocol `TLS` listeners, TLSRoutes): the client's ClientHello is read
//! without terminating TLS, its SNI name picks a TLSRoute on the port (listener isolation and
//! hostname precedence as for HTTP), a backendRef by weight and an endpoint of it (failing
//! over on connect failure), and the connection's bytes, ClientHello included, are relayed to
//! it unchanged: the backend terminates TLS (BackendTLSPolicy does not apply).
//!
//! Timeouts: the ClientHello must arrive within the listener's `header_read_timeout` (the
//! limit HTTP heads and TLS handshakes have); a relay in which neither side sends anything for
//! `idle_timeout` is closed (the limit idle keep-alive connections have). Draining does not cut
//! a relay: it runs until both sides are done (or the data plane's drain timeout ends the
//! process), and a config swap leaves it alone (it holds no part of the route table).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::accesslog::PassthroughLine;
use crate::backend::{BackendRt, Tried};
use crate::client_hello::{Hello, HelloError, Peek};
use crate::limits::Limits;
use crate::metrics::PassthroughOutcome as Outcome;
use crate::random::random;
use crate::state::Shared;
use crate::table::Target;

/// What a connection's log line and counters say.
struct Report {
    sni: Option<String>,
    route: Option<Arc<str>>,
    backend: Option<SocketAddr>,
}

/// Serves one accepted connection on a TLS passthrough port.
pub async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    port: u16,
    shared: &Shared,
    limits: &Limits,
) {
    let start = Instant::now();
    let mut report = Report {
        sni: None,
        route: None,
        backend: None,
    };
    let activity = Activity::new();
    let outcome = run(&mut client, port, shared, limits, &mut report, &activity).await;
    let (from_client, to_client) = activity.bytes();
    shared
        .metrics
        .record_passthrough(outcome, from_client, to_client);
    if shared.access_log.load(Ordering::Relaxed) {
        shared.log.log(&PassthroughLine {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            peer,
            port,
            sni: report.sni.as_deref(),
            route: report.route.as_deref().unwrap_or("_none"),
            backend: report.backend,
            bytes_from_client: from_client,
            bytes_to_client: to_client,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            outcome: outcome.label(),
        });
    }
}

async fn run(
    client: &mut TcpStream,
    port: u16,
    shared: &Shared,
    limits: &Limits,
    report: &mut Report,
    activity: &Activity,
) -> Outcome {
    let read = tokio::time::timeout(limits.header_read_timeout, read_hello(client)).await;
    let (hello, recorded) = match read {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(port, error = %e, "passthrough: bad ClientHello");
            return Outcome::BadClientHello;
        }
        Err(_) => return Outcome::BadClientHello,
    };
    report.sni = hello.sni;
    let (route, backend) = match choose(shared, port, report.sni.as_deref()) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    report.route = Some(route);
    let Some((upstream, addr)) = connect(&backend).await else {
        return Outcome::BackendUnavailable;
    };
    drop(backend);
    report.backend = Some(addr);
    let _ = client.set_nodelay(true);
    relay(client, upstream, &recorded, limits.idle_timeout, activity).await;
    Outcome::Relayed
}

/// Reads from `client` until the ClientHello is complete; returns it with every byte read.
async fn read_hello(client: &mut TcpStream) -> Result<(Hello, Vec<u8>), HelloError> {
    let mut peek = Peek::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = client.read(&mut buf).await.map_err(HelloError::Read)?;
        if n == 0 {
            return Err(HelloError::Read(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some(hello) = peek.feed(&buf[..n])? {
            return Ok((hello, peek.into_recorded()));
        }
    }
}

/// The route and backend for a connection to `port` with SNI `sni`: the listener whose
/// hostname matches most specifically, its TLSRoute for the name, a backendRef by weight.
fn choose(
    shared: &Shared,
    port: u16,
    sni: Option<&str>,
) -> Result<(Arc<str>, Arc<BackendRt>), Outcome> {
    // Borrowed only for the choice: the relay holds nothing of the table, so a config swap
    // frees the old one however long the connection lasts.
    let guard = shared.table_guard();
    let table = guard.as_ref().ok_or(Outcome::NoRoute)?;
    let port = table.ports.get(&port).ok_or(Outcome::NoRoute)?;
    // Without SNI, as a request without Host: only a listener without hostname, and in it only
    // routes without hostnames, take it.
    let name = sni.unwrap_or("");
    let rule = port
        .listener_for(name)
        .and_then(|l| l.lookup_sni(name))
        .ok_or(Outcome::NoRoute)?;
    let total = rule.total_weight();
    if total == 0 {
        return Err(Outcome::InvalidBackend);
    }
    match rule.pick(random() % total) {
        Some(Target::Backend { backend, .. }) => Ok((rule.route.clone(), backend.clone())),
        Some(Target::Invalid) | None => Err(Outcome::InvalidBackend),
    }
}

/// A connection to an endpoint of `backend`, trying others (as HTTP requests do) when a
/// connect fails; `None` if it has none or none could be reached.
async fn connect(backend: &BackendRt) -> Option<(TcpStream, SocketAddr)> {
    let mut ep = backend.pick()?;
    let mut tried = Tried::first(ep);
    loop {
        let addr = backend.endpoints[ep];
        match crate::tcp_pool::connect(addr, backend.connect_timeout).await {
            Ok(s) => {
                backend.health.connected(ep);
                return Some((s, addr));
            }
            Err(_) => ep = backend.failover(&mut tried)?,
        }
    }
}

/// Sends `recorded` to the backend, then copies both ways until both directions are done
/// (a FIN one way is passed on and the other way keeps flowing) or nothing moved either way
/// for `idle`.
async fn relay(
    client: &mut TcpStream,
    mut upstream: TcpStream,
    recorded: &[u8],
    idle: Duration,
    activity: &Activity,
) {
    if upstream.write_all(recorded).await.is_err() {
        return;
    }
    activity
        .from_client
        .fetch_add(recorded.len() as u64, Ordering::Relaxed);
    activity.touch();
    let mut metered = Metered {
        inner: client,
        activity,
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut metered, &mut upstream) => {}
        () = activity.idle_for(idle) => {
            tracing::debug!("passthrough: idle timeout");
        }
    }
}

/// Bytes each way and the time of the last one, shared by the copy and its idle watchdog.
struct Activity {
    start: Instant,
    from_client: AtomicU64,
    to_client: AtomicU64,
    /// Milliseconds after `start` that something was last read or written.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn bytes(&self) -> (u64, u64) {
        (
            self.from_client.load(Ordering::Relaxed),
            self.to_client.load(Ordering::Relaxed),
        )
    }

    /// Returns once nothing was read or written for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The client side of a relay, counting what it reads (client → backend) and writes
/// (backend → client): one wrapper sees both directions.
struct Metered<'a> {
    inner: &'a mut TcpStream,
    activity: &'a Activity,
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.activity
                .from_client
                .fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.activity
                .to_client
                .fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}
