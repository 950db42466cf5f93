//! Where a TLS or TCP listener's connection goes: the listener and route its SNI name picks (a
//! TCP connection has none: the port's one listener and its oldest route; for TLS the
//! listener says whether it terminates), the backendRef by weight, an endpoint of that backend.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::backend::{BackendRt, Tried};
use crate::state::Shared;
use crate::table::Target;

/// The route a connection takes and what its listener does with it.
pub struct Choice {
    /// `namespace/name` of the route.
    pub route: Arc<str>,
    /// The listener's server config if it terminates TLS; `None`: it passes TLS through.
    pub terminate: Option<Arc<rustls::ServerConfig>>,
    /// The backendRef picked by weight; `None` if it is one the controller found invalid (or
    /// no backendRef has weight).
    pub backend: Option<Arc<BackendRt>>,
}

/// The choice for a connection to `port` whose ClientHello named `sni`: the listener whose
/// hostname matches most specifically, its TLSRoute for the name, a backendRef by weight.
/// `None` if no listener or route takes the name.
pub fn choose(shared: &Shared, port: u16, sni: Option<&str>) -> Option<Choice> {
    // Borrowed only for the choice: the relay holds nothing of the table, so a config swap
    // frees the old one however long the connection lasts.
    let guard = shared.table_guard();
    let port = guard.as_ref()?.ports.get(&port)?;
    // Without SNI, as a request without Host: only a listener without hostname, and in it only
    // routes without hostnames, take it.
    let name = sni.unwrap_or("");
    let listener = port.listener_for(name)?;
    let rule = listener.lookup_l4(name)?;
    let backend = match rule.pick_random() {
        Some(Target::Backend { backend, .. }) => Some(backend.clone()),
        Some(Target::Invalid) | None => None,
    };
    Some(Choice {
        route: rule.route.clone(),
        terminate: listener.terminate.clone(),
        backend,
    })
}

/// A connection to an endpoint of `backend`, trying others (as HTTP requests do) when a
/// connect fails; `None` if it has none or none could be reached.
pub async fn connect(backend: &BackendRt) -> Option<(TcpStream, SocketAddr)> {
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
