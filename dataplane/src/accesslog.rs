//! The JSON access log: one line per request (per connection for TLS and TCP listeners, per
//! session for UDP) on stdout.
//! Lines are serialised straight into a shared buffer (no JSON tree, no per-line `println!` and
//! its write syscall) and written in batches by [`AccessLog::flush`], which the binary calls
//! every 100 ms and once at exit; a full buffer is written at once so memory stays bounded.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;

use serde::Serialize;

/// A buffer this large is written out without waiting for the next flush.
const FLUSH_AT: usize = 64 * 1024;

/// One request as logged.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub ts_ms: u64,
    pub peer: SocketAddr,
    pub port: u16,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: &'a str,
    pub duration_ms: f64,
}

/// One connection to a TLS or TCP listener as logged (`crate::l4`): no request is seen, so the
/// SNI name, the backend address and the bytes each way stand for method, path and status.
#[derive(Debug, Serialize)]
pub struct L4Line<'a> {
    pub ts_ms: u64,
    pub peer: SocketAddr,
    pub port: u16,
    /// `metrics::L4Protocol`'s label: `tls` or `tcp`.
    pub protocol: &'a str,
    /// The ClientHello's SNI name; null if it had none (or was not read).
    pub sni: Option<&'a str>,
    /// `passthrough` or `terminate`: what the listener of the route does; null if no route
    /// took the connection.
    pub mode: Option<&'a str>,
    /// `namespace/name` of the TLSRoute, `_none` if none took the connection.
    pub route: &'a str,
    /// The endpoint relayed to; null if none was connected.
    pub backend: Option<SocketAddr>,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub duration_ms: f64,
    /// `metrics::L4Outcome`'s label.
    pub outcome: &'a str,
}

/// One UDP session as logged when it ends (`crate::udp`): datagrams and bytes each way stand
/// for a request. Datagrams dropped without a session get no line (they are counted), so a
/// flood of spoofed sources cannot flood the log.
#[derive(Debug, Serialize)]
pub struct UdpSessionLine<'a> {
    pub ts_ms: u64,
    pub peer: SocketAddr,
    pub port: u16,
    /// `namespace/name` of the UDPRoute.
    pub route: &'a str,
    /// The endpoint relayed to.
    pub backend: SocketAddr,
    pub datagrams_from_client: u64,
    pub datagrams_to_client: u64,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub duration_ms: f64,
    /// `metrics::UdpOutcome`'s label.
    pub outcome: &'a str,
}

/// Buffered access-log lines waiting to be written.
#[derive(Debug, Default)]
pub struct AccessLog {
    buf: Mutex<Vec<u8>>,
}

impl AccessLog {
    /// Appends `line` (JSON + newline); writes the batch now if the buffer is full.
    pub fn log<L: Serialize>(&self, line: &L) {
        let full = {
            let mut buf = self.buf.lock().expect("access log poisoned");
            if serde_json::to_writer(&mut *buf, line).is_err() {
                return;
            }
            buf.push(b'\n');
            (buf.len() >= FLUSH_AT).then(|| std::mem::take(&mut *buf))
        };
        if let Some(batch) = full {
            write_out(&batch);
        }
    }

    /// Writes whatever is buffered.
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.buf.lock().expect("access log poisoned"));
        if !batch.is_empty() {
            write_out(&batch);
        }
    }

    /// The buffered bytes (tests).
    pub fn pending(&self) -> Vec<u8> {
        self.buf.lock().expect("access log poisoned").clone()
    }
}

fn write_out(batch: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the proxy down; the lines are dropped.
    let _ = out.write_all(batch).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_escaped() {
        let log = AccessLog::default();
        log.log(&Line {
            ts_ms: 1,
            peer: "127.0.0.1:5".parse().unwrap(),
            port: 80,
            method: "GET",
            host: "a.example",
            path: "/x\"\n",
            status: 200,
            route: "ns/r",
            duration_ms: 0.5,
        });
        let text = String::from_utf8(log.pending()).unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["path"], "/x\"\n");
        assert_eq!(v["peer"], "127.0.0.1:5");
        assert_eq!(v["route"], "ns/r");
        assert_eq!(v["status"], 200);
        log.flush();
        assert!(log.pending().is_empty());
    }
}
