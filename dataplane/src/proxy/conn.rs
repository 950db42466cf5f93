//! What the accept loop knows about a client connection: its port, peer and transport.

use std::net::SocketAddr;

use http::header::HeaderValue;

/// What the accept loop knows about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub port: u16,
    pub peer: SocketAddr,
    /// `peer`'s IP as a header value (X-Forwarded-For), formatted once per connection.
    pub peer_ip: HeaderValue,
    pub transport: Transport,
}

/// How a client connection arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// With the TLS SNI name (lowercase) if the client sent one.
    Tls {
        sni: Option<String>,
    },
}

impl Transport {
    /// The scheme requests on this connection use (redirects, X-Forwarded-Proto).
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls { .. } => "https",
        }
    }

    pub fn sni(&self) -> Option<&str> {
        match self {
            Transport::Tls { sni } => sni.as_deref(),
            Transport::Plain => None,
        }
    }
}

impl ConnInfo {
    /// A connection accepted on `port` from `peer`.
    pub fn new(port: u16, peer: SocketAddr, transport: Transport) -> Self {
        // An IP's text form is always a valid header value.
        let peer_ip = match peer.ip() {
            std::net::IpAddr::V4(v4) => HeaderValue::from_bytes(ipv4_text(v4, &mut [0; 15])),
            ip => HeaderValue::try_from(ip.to_string()),
        }
        .unwrap_or(HeaderValue::from_static("unknown"));
        ConnInfo {
            port,
            peer,
            peer_ip,
            transport,
        }
    }
}

/// `ip` in dotted decimal, in `buf`, without `core::fmt`, which took 0.8 % of the CPU with one
/// request per connection (`perf`).
fn ipv4_text(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &[u8] {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(octet).as_bytes();
        buf[n..n + digits.len()].copy_from_slice(digits);
        n += digits.len();
    }
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_the_standard_form() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "1.20.100.9",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(ipv4_text(ip, &mut [0; 15]), ip.to_string().as_bytes());
        }
    }
}
