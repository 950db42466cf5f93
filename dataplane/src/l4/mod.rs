//! The listeners whose connections are relayed as bytes, not served as requests.
//!
//! TCP listeners (protocol `TCP`, TCPRoutes): a connection goes to the listener's oldest
//! TCPRoute (later ones are attached but take nothing, as the Gateway API has it), a
//! backendRef of it by weight and an endpoint, and both directions are relayed.
//!
//! TLS listeners (protocol `TLS`, TLSRoutes): the client's ClientHello is read without
//! terminating TLS, and its SNI name picks the listener of the port (most specific hostname),
//! a TLSRoute of it (hostname precedence as for HTTP), a backendRef by weight and an endpoint
//! of it (failing over on connect failure). What happens next is the listener's mode:
//!
//! - passthrough (no `tls`): the connection's bytes, ClientHello included, are relayed to the
//!   backend unchanged; the backend terminates TLS (BackendTLSPolicy does not apply).
//! - terminate (`tls`): the data plane completes the handshake itself with the listener's
//!   certificates ([`terminate`]), then relays the decrypted bytes to the backend in plain TCP.
//!
//! Both kinds may share a port, so the mode is known only once the SNI name chose a listener.
//! A name no listener or route takes is closed without a TLS alert in either mode: no
//! handshake has begun, and a passthrough port could not send one.
//!
//! Timeouts (TLS and TCP): the ClientHello and, when terminating, the rest of the handshake must complete
//! within the listener's `header_read_timeout` (the limit HTTP heads and HTTPS handshakes
//! have); a relay in which neither side sends anything for `idle_timeout` is closed (the limit
//! idle keep-alive connections have). Draining does not cut a relay: it runs until both sides
//! are done (or the data plane's drain timeout ends the process), and a config swap leaves it
//! alone (it holds no part of the route table).

mod choose;
mod relay;
mod terminate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::accesslog::L4Line;
use crate::backend::BackendRt;
use crate::client_hello::{Hello, HelloError, Peek};
use crate::limits::Limits;
use crate::metrics::{L4Outcome as Outcome, L4Protocol};
use crate::state::Shared;
use relay::Activity;

/// What a connection's log line and counters say.
#[derive(Default)]
struct Report {
    sni: Option<String>,
    mode: Option<&'static str>,
    route: Option<Arc<str>>,
    backend: Option<SocketAddr>,
}

/// Serves one accepted connection on a TLS or TCP port.
pub async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    port: u16,
    protocol: L4Protocol,
    shared: &Shared,
    limits: &Limits,
) {
    let start = Instant::now();
    let mut report = Report::default();
    let activity = Activity::new();
    let outcome = match protocol {
        L4Protocol::Tls => run_tls(&mut client, port, shared, limits, &mut report, &activity).await,
        L4Protocol::Tcp => run_tcp(&mut client, port, shared, limits, &mut report, &activity).await,
    };
    let (from_client, to_client) = activity.bytes();
    shared
        .metrics
        .record_l4(protocol, outcome, from_client, to_client);
    if shared.access_log.load(Ordering::Relaxed) {
        shared.log.log(&L4Line {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            peer,
            port,
            protocol: protocol.label(),
            sni: report.sni.as_deref(),
            mode: report.mode,
            route: report.route.as_deref().unwrap_or("_none"),
            backend: report.backend,
            bytes_from_client: from_client,
            bytes_to_client: to_client,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            outcome: outcome.label(),
        });
    }
}

/// A TCP listener's connection: its route (the listener's oldest TCPRoute), a backendRef by
/// weight, an endpoint, then both directions relayed as for TLS.
async fn run_tcp(
    client: &mut TcpStream,
    port: u16,
    shared: &Shared,
    limits: &Limits,
    report: &mut Report,
    activity: &Activity,
) -> Outcome {
    let Some(choice) = choose::choose(shared, port, None) else {
        return Outcome::NoRoute;
    };
    report.route = Some(choice.route);
    let Some(backend) = choice.backend else {
        return Outcome::InvalidBackend;
    };
    let _ = client.set_nodelay(true);
    relay_to(backend, client, &[], limits, report, activity).await
}

async fn run_tls(
    client: &mut TcpStream,
    port: u16,
    shared: &Shared,
    limits: &Limits,
    report: &mut Report,
    activity: &Activity,
) -> Outcome {
    // One deadline for the whole handshake, as an HTTPS listener has, however the time is
    // split between the ClientHello and the rest.
    let deadline = tokio::time::Instant::now() + limits.header_read_timeout;
    let (hello, recorded) = match tokio::time::timeout_at(deadline, read_hello(client)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(port, error = %e, "TLS listener: bad ClientHello");
            return Outcome::BadClientHello;
        }
        Err(_) => return Outcome::BadClientHello,
    };
    report.sni = hello.sni;
    let Some(choice) = choose::choose(shared, port, report.sni.as_deref()) else {
        return Outcome::NoRoute;
    };
    report.route = Some(choice.route);
    report.mode = Some(if choice.terminate.is_some() {
        "terminate"
    } else {
        "passthrough"
    });
    let Some(backend) = choice.backend else {
        return Outcome::InvalidBackend;
    };
    let _ = client.set_nodelay(true);
    // Before any backend is dialled: a client that fails the handshake never reaches one.
    match choice.terminate {
        Some(cfg) => match terminate::handshake(cfg, recorded, client, deadline).await {
            Some(tls) => relay_to(backend, tls, &[], limits, report, activity).await,
            None => Outcome::HandshakeFailed,
        },
        None => relay_to(backend, client, &recorded, limits, report, activity).await,
    }
}

/// Connects to an endpoint of `backend` and relays `client` (the TCP connection, or the TLS
/// stream past the handshake) to it, sending `first` (what was read of a passed-through
/// connection) first.
async fn relay_to<C: AsyncRead + AsyncWrite + Unpin>(
    backend: Arc<BackendRt>,
    client: C,
    first: &[u8],
    limits: &Limits,
    report: &mut Report,
    activity: &Activity,
) -> Outcome {
    let Some((upstream, addr)) = choose::connect(&backend).await else {
        return Outcome::BackendUnavailable;
    };
    // Part of the table: a relay outliving a config swap must not keep the old one alive.
    drop(backend);
    report.backend = Some(addr);
    relay::relay(client, upstream, first, limits.idle_timeout, activity).await;
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
