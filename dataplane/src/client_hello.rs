//! Reading a TLS ClientHello without terminating TLS, for passthrough listeners: the bytes fed
//! in are recorded (to be replayed to the backend unchanged) and parsed by rustls's own
//! ClientHello reader ([`rustls::server::Acceptor`]), which joins a ClientHello fragmented
//! over several records and over several reads, and ignores extensions it does not know
//! (GREASE, ECH, anything newer).
//!
//! Pure: no I/O; the caller reads the socket and feeds what arrives.

use rustls::server::Acceptor;

/// The largest ClientHello accepted, in bytes as they arrive (record headers included). A
/// ClientHello with post-quantum key shares is about 2 KiB; one record holds up to 16 KiB.
pub const MAX_CLIENT_HELLO: usize = 32 * 1024;

/// The TLS record type of handshake messages: the first byte of every ClientHello.
const HANDSHAKE: u8 = 0x16;

/// Why the bytes are not a ClientHello Pylon can route.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("not TLS (first byte {0:#04x})")]
    NotTls(u8),
    #[error("ClientHello larger than {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
    #[error("malformed ClientHello: {0}")]
    Malformed(rustls::Error),
    #[error("reading the ClientHello: {0}")]
    Read(std::io::Error),
}

/// A ClientHello being read: what arrived so far and rustls's parser state.
pub struct Peek {
    acceptor: Acceptor,
    recorded: Vec<u8>,
}

impl Default for Peek {
    fn default() -> Self {
        Peek {
            acceptor: Acceptor::default(),
            recorded: Vec::with_capacity(2048),
        }
    }
}

impl std::fmt::Debug for Peek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peek")
            .field("recorded", &self.recorded.len())
            .finish()
    }
}

/// A complete ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The SNI server name, lowercased; `None` if the client sent none (or an IP address,
    /// which RFC 6066 does not allow there and rustls reads as none).
    pub sni: Option<String>,
}

impl Peek {
    /// Records `bytes` (the next ones read from the client) and parses them: `Ok(None)` until
    /// the ClientHello is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Hello>, HelloError> {
        if self.recorded.is_empty()
            && let Some(&first) = bytes.first()
            && first != HANDSHAKE
        {
            // Fail at once on plain HTTP and the like, without waiting for a record header.
            return Err(HelloError::NotTls(first));
        }
        if self.recorded.len() + bytes.len() > MAX_CLIENT_HELLO {
            return Err(HelloError::TooLarge);
        }
        self.recorded.extend_from_slice(bytes);
        let mut rest = bytes;
        // rustls takes at most its read size per call: feed and parse until all is in.
        while !rest.is_empty() {
            let n = self
                .acceptor
                .read_tls(&mut rest)
                .map_err(HelloError::Read)?;
            match self.acceptor.accept() {
                Ok(Some(accepted)) => {
                    let sni = accepted
                        .client_hello()
                        .server_name()
                        .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
                    return Ok(Some(Hello { sni }));
                }
                Ok(None) => {}
                Err((e, _alert)) => return Err(HelloError::Malformed(e)),
            }
            if n == 0 {
                break;
            }
        }
        Ok(None)
    }

    /// Every byte fed so far, in order: what the backend is sent first.
    pub fn into_recorded(self) -> Vec<u8> {
        self.recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello, as rustls's client writes it (one record), for `sni` (an IP: none).
    fn client_hello(sni: &str) -> Vec<u8> {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// `record` (one handshake record) re-framed as two records, split `at` bytes into its body.
    fn split_record(record: &[u8], at: usize) -> Vec<u8> {
        let body = &record[5..];
        let mut out = Vec::new();
        for part in [&body[..at], &body[at..]] {
            out.extend_from_slice(&record[..3]);
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// `record` (one ClientHello record) with the extension `(ty, data)` put first among its
    /// extensions, every length around it grown to match.
    fn with_extension(record: &[u8], ty: u16, data: &[u8]) -> Vec<u8> {
        let added = 4 + data.len();
        // Record header 5, handshake header 4, version 2, random 32.
        let mut at = 5 + 4 + 2 + 32;
        at += 1 + record[at] as usize; // session id
        at += 2 + u16::from_be_bytes([record[at], record[at + 1]]) as usize; // cipher suites
        at += 1 + record[at] as usize; // compression methods
        let mut out = record.to_vec();
        let grow16 = |out: &mut Vec<u8>, i: usize| {
            let n = u16::from_be_bytes([out[i], out[i + 1]]) as usize + added;
            out[i..i + 2].copy_from_slice(&(n as u16).to_be_bytes());
        };
        grow16(&mut out, 3);
        let hs = u32::from_be_bytes([0, out[6], out[7], out[8]]) as usize + added;
        out[6..9].copy_from_slice(&(hs as u32).to_be_bytes()[1..]);
        grow16(&mut out, at);
        let mut ext = ty.to_be_bytes().to_vec();
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
        out.splice(at + 2..at + 2, ext);
        out
    }

    #[test]
    fn grease_ech_and_unknown_extensions_are_ignored() {
        // An outer ECH extension (draft-ietf-tls-esni §5): outer, HKDF-SHA256 / AES-128-GCM,
        // config 0x42, a 32-byte encapsulated key, a 16-byte payload (as ECH GREASE sends).
        let mut ech = vec![0u8, 0, 1, 0, 1, 0x42, 0, 32];
        ech.extend([7u8; 32]);
        ech.extend([0, 16]);
        ech.extend([9u8; 16]);
        let mut hello = client_hello("a.example.com");
        // GREASE (RFC 8701), an ECH outer extension with an opaque payload, and an unassigned
        // type: the SNI (the ECH public name, for ECH) still routes.
        for (ty, data) in [(0x0a0a, &b""[..]), (0xfe0d, &ech[..]), (0x7777, b"x")] {
            hello = with_extension(&hello, ty, data);
        }
        let got = sni_of(&[&hello]).unwrap().unwrap();
        assert_eq!(got.sni.as_deref(), Some("a.example.com"));
    }

    fn sni_of(chunks: &[&[u8]]) -> Result<Option<Hello>, HelloError> {
        let mut peek = Peek::default();
        for c in chunks {
            if let Some(h) = peek.feed(c)? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    #[test]
    fn reads_the_sni_lowercased() {
        let hello = client_hello("App.Example.COM");
        let got = sni_of(&[&hello]).unwrap().unwrap();
        assert_eq!(got.sni.as_deref(), Some("app.example.com"));
    }

    #[test]
    fn an_ip_address_is_no_sni() {
        let hello = client_hello("127.0.0.1");
        assert_eq!(sni_of(&[&hello]).unwrap().unwrap().sni, None);
    }

    #[test]
    fn a_hello_fed_byte_by_byte_is_read_once_complete_and_recorded_whole() {
        let hello = client_hello("a.example.com");
        let mut peek = Peek::default();
        for (i, b) in hello.iter().enumerate() {
            let got = peek.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(got.is_some(), i == hello.len() - 1, "byte {i}");
        }
        assert_eq!(peek.into_recorded(), hello);
    }

    #[test]
    fn a_hello_over_two_records_is_read() {
        let hello = split_record(&client_hello("a.example.com"), 40);
        let (first, second) = hello.split_at(hello.len() / 2);
        let got = sni_of(&[first, second]).unwrap().unwrap();
        assert_eq!(got.sni.as_deref(), Some("a.example.com"));
    }

    #[test]
    fn an_incomplete_hello_waits() {
        let hello = client_hello("a.example.com");
        assert_eq!(sni_of(&[&hello[..hello.len() - 1]]).unwrap(), None);
    }

    #[test]
    fn what_is_not_a_hello_is_refused() {
        assert!(matches!(
            sni_of(&[b"GET / HTTP/1.1\r\n\r\n"]),
            Err(HelloError::NotTls(b'G'))
        ));
        // A handshake record holding a ServerHello-typed message, not a ClientHello.
        let mut hello = client_hello("a.example.com");
        hello[5] = 2;
        assert!(matches!(sni_of(&[&hello]), Err(HelloError::Malformed(_))));
        // An application-data record first.
        let mut app = client_hello("a.example.com");
        app[0] = 0x17;
        assert!(matches!(sni_of(&[&app]), Err(HelloError::NotTls(0x17))));
    }

    #[test]
    fn a_hello_past_the_cap_is_refused() {
        let mut peek = Peek::default();
        // Record headers claiming 16 KiB bodies, never completing a handshake message.
        let mut record = vec![HANDSHAKE, 3, 1, 0x40, 0];
        record.extend(std::iter::repeat_n(0u8, 0x4000));
        let mut result = Ok(None);
        for _ in 0..3 {
            result = peek.feed(&record);
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "{result:?}");
    }
}
