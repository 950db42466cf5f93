//! The handshake of a terminating TLS listener, on a connection whose ClientHello was already
//! read to choose the route: rustls is given those bytes again, then the rest of the socket,
//! so it sees the connection from its first byte.

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::rewind::Rewind;

/// A client connection past its handshake: reads and writes are plaintext.
pub type Terminated<'a> = tokio_rustls::server::TlsStream<Rewind<&'a mut TcpStream>>;

/// Completes the handshake of `client`, of which `recorded` (the ClientHello, maybe more) was
/// read, with `cfg` by `deadline`; `None` if it fails or runs out of time. A failure rustls
/// detects is answered with its alert, as an HTTPS listener's is: by then the client has a
/// route and is speaking to this listener.
pub async fn handshake(
    cfg: std::sync::Arc<rustls::ServerConfig>,
    recorded: Vec<u8>,
    client: &mut TcpStream,
    deadline: Instant,
) -> Option<Terminated<'_>> {
    let io = Rewind::new(recorded.into(), client);
    let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(io);
    match tokio::time::timeout_at(deadline, accept).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS listener: handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS listener: handshake not done in time");
            None
        }
    }
}
