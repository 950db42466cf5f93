//! Prometheus metrics with bounded label sets: route labels come from the config, codes are
//! HTTP statuses; the label map is capped so a flood of distinct values cannot grow it.

use std::collections::BTreeMap;

// Looked up once per request; the keys come from the config (foldhash, not SipHash).
use foldhash::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

mod udp;
pub use udp::{Direction, Udp, UdpDrop, UdpOutcome};

const BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];
const MAX_SERIES: usize = 10_000;
/// Request counters and the latency histogram are split by worker thread (worker index modulo
/// this), so workers on different cores never take the same lock or write the same cache line
/// per request.
const SHARDS: usize = 16;

/// Which engine served a request: the native HTTP/1.1 one or hyper (HTTP/2, and what the
/// native one hands over). Counted so tests and operators can tell which path a request took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Native,
    Hyper,
}

impl Engine {
    const ALL: [Engine; 2] = [Engine::Native, Engine::Hyper];

    fn label(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Hyper => "hyper",
        }
    }
}

/// The listener protocols whose connections `crate::l4` relays as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Protocol {
    /// TLS listeners, passthrough or terminating (TLSRoutes).
    Tls,
    /// TCP listeners (TCPRoutes).
    Tcp,
}

impl L4Protocol {
    const ALL: [L4Protocol; 2] = [L4Protocol::Tls, L4Protocol::Tcp];

    /// The metric label and access-log value.
    pub fn label(self) -> &'static str {
        match self {
            L4Protocol::Tls => "tls",
            L4Protocol::Tcp => "tcp",
        }
    }
}

/// How a connection to a TLS or TCP listener ended (`crate::l4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Outcome {
    /// Relayed to a backend until both sides were done (or the idle timeout).
    Relayed,
    /// No route takes the connection (for TLS: its SNI name, or no listener of the port does).
    NoRoute,
    /// TLS: not a TLS ClientHello, malformed, too large, or not complete in time.
    BadClientHello,
    /// TLS: a terminating listener's handshake failed or did not complete in time (the client
    /// did not trust the certificate, had no valid client certificate, spoke no common version).
    HandshakeFailed,
    /// The route's backendRef chosen is one the controller found invalid (or none has weight).
    InvalidBackend,
    /// No usable endpoint, or every connect tried failed.
    BackendUnavailable,
}

impl L4Outcome {
    const ALL: [L4Outcome; 6] = [
        L4Outcome::Relayed,
        L4Outcome::NoRoute,
        L4Outcome::BadClientHello,
        L4Outcome::HandshakeFailed,
        L4Outcome::InvalidBackend,
        L4Outcome::BackendUnavailable,
    ];

    /// The metric label and access-log value.
    pub fn label(self) -> &'static str {
        match self {
            L4Outcome::Relayed => "relayed",
            L4Outcome::NoRoute => "no_route",
            L4Outcome::BadClientHello => "bad_client_hello",
            L4Outcome::HandshakeFailed => "handshake_failed",
            L4Outcome::InvalidBackend => "invalid_backend",
            L4Outcome::BackendUnavailable => "backend_unavailable",
        }
    }

    /// Whether a connection of `protocol` can end so (a TCP one has no handshake).
    fn applies_to(self, protocol: L4Protocol) -> bool {
        protocol == L4Protocol::Tls
            || !matches!(self, L4Outcome::BadClientHello | L4Outcome::HandshakeFailed)
    }
}

/// One L4 protocol's counters: one increment per connection and two per relay, so plain
/// atomics (no per-worker shards as for requests).
#[derive(Debug, Default)]
struct L4Counts {
    /// Connections per [`L4Outcome`], indexed by its discriminant.
    outcomes: [AtomicU64; L4Outcome::ALL.len()],
    from_client: AtomicU64,
    to_client: AtomicU64,
}

/// route → code → count.
type Series = HashMap<String, BTreeMap<u16, u64>>;

/// What one worker counted: requests by route and code, and their latencies.
#[derive(Debug, Default)]
struct Counts {
    series: Series,
    /// Requests per latency bucket (the smallest bucket that holds each; not cumulative).
    buckets: [u64; BUCKETS_MS.len()],
    latency_count: u64,
    latency_sum_us: u64,
    /// Requests per [`Engine`], indexed by its discriminant.
    engines: [u64; Engine::ALL.len()],
}

/// One worker's counts, on a cache line of its own; the request path already holds this lock,
/// so the histogram costs no atomic operation of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Counts>);

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [Shard; SHARDS],
    /// Per [`L4Protocol`], indexed by its discriminant.
    l4: [L4Counts; L4Protocol::ALL.len()],
    pub udp: Udp,
    pub active_connections: AtomicI64,
    /// The highest `active_connections` since [`crate::memory`] last looked.
    pub peak_connections: AtomicI64,
    pub config_rejections: AtomicU64,
    pub config_reloads: AtomicU64,
    pub config_version: Mutex<String>,
}

impl Metrics {
    pub fn record(&self, route: &str, code: u16, latency: Duration, engine: Engine) {
        let shard = &self.requests[crate::worker::worker() % SHARDS];
        let mut c = shard.0.lock().expect("metrics poisoned");
        // The hot path allocates nothing once a (route, code) series exists.
        if let Some(n) = c
            .series
            .get_mut(route)
            .and_then(|codes| codes.get_mut(&code))
        {
            *n += 1;
        } else {
            let series: usize = c.series.values().map(BTreeMap::len).sum();
            let route = if series < MAX_SERIES {
                route
            } else {
                "_overflow"
            };
            *c.series
                .entry(route.to_string())
                .or_default()
                .entry(code)
                .or_default() += 1;
        }
        // One increment per request (the smallest bucket that holds it); the exposition sums
        // them into Prometheus' cumulative buckets.
        let ms = latency.as_millis() as u64;
        if let Some(i) = BUCKETS_MS.iter().position(|b| ms <= *b) {
            c.buckets[i] += 1;
        }
        c.latency_count += 1;
        c.latency_sum_us += latency.as_micros() as u64;
        c.engines[engine as usize] += 1;
    }

    /// Counts a finished connection to a TLS or TCP listener and the bytes it relayed each way
    /// (as received: TLS records when passing through, decrypted bytes when terminating).
    pub fn record_l4(
        &self,
        protocol: L4Protocol,
        outcome: L4Outcome,
        from_client: u64,
        to_client: u64,
    ) {
        let t = &self.l4[protocol as usize];
        t.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        t.from_client.fetch_add(from_client, Ordering::Relaxed);
        t.to_client.fetch_add(to_client, Ordering::Relaxed);
    }

    /// Connections to `protocol` listeners that ended with `outcome` so far.
    pub fn l4_connections(&self, protocol: L4Protocol, outcome: L4Outcome) -> u64 {
        self.l4[protocol as usize].outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// Requests served by `engine` so far, summed over the workers.
    pub fn served_by(&self, engine: Engine) -> u64 {
        self.requests
            .iter()
            .map(|shard| shard.0.lock().expect("metrics poisoned").engines[engine as usize])
            .sum()
    }

    /// Prometheus text exposition.
    pub fn render(&self, ready: bool) -> String {
        let mut s = String::new();
        s.push_str("# HELP pylon_requests_total Requests by route and response code.\n# TYPE pylon_requests_total counter\n");
        let mut requests: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();
        let mut buckets = [0u64; BUCKETS_MS.len()];
        let (mut count, mut sum_us) = (0u64, 0u64);
        let mut engines = [0u64; Engine::ALL.len()];
        for shard in &self.requests {
            let c = shard.0.lock().expect("metrics poisoned");
            for (route, codes) in &c.series {
                let sum = requests.entry(route.clone()).or_default();
                for (code, n) in codes {
                    *sum.entry(*code).or_default() += n;
                }
            }
            for (total, n) in buckets.iter_mut().zip(&c.buckets) {
                *total += n;
            }
            count += c.latency_count;
            sum_us += c.latency_sum_us;
            for (total, n) in engines.iter_mut().zip(&c.engines) {
                *total += n;
            }
        }
        for (route, codes) in &requests {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            for (code, n) in codes {
                let _ = writeln!(
                    s,
                    "pylon_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
                );
            }
        }
        s.push_str("# HELP pylon_request_duration_seconds Request latency.\n# TYPE pylon_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let le = *b as f64 / 1000.0;
            cumulative += buckets[i];
            let _ = writeln!(
                s,
                "pylon_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            s,
            "pylon_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "pylon_request_duration_seconds_sum {}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(s, "pylon_request_duration_seconds_count {count}");
        s.push_str("# HELP pylon_requests_by_engine_total Requests by the engine that served them.\n# TYPE pylon_requests_by_engine_total counter\n");
        for engine in Engine::ALL {
            let _ = writeln!(
                s,
                "pylon_requests_by_engine_total{{engine=\"{}\"}} {}",
                engine.label(),
                engines[engine as usize]
            );
        }
        s.push_str("# HELP pylon_l4_connections_total Connections to TLS and TCP listeners by protocol and how they ended.\n# TYPE pylon_l4_connections_total counter\n");
        for protocol in L4Protocol::ALL {
            for outcome in L4Outcome::ALL
                .into_iter()
                .filter(|o| o.applies_to(protocol))
            {
                let _ = writeln!(
                    s,
                    "pylon_l4_connections_total{{protocol=\"{}\",outcome=\"{}\"}} {}",
                    protocol.label(),
                    outcome.label(),
                    self.l4_connections(protocol, outcome)
                );
            }
        }
        s.push_str("# HELP pylon_l4_bytes_total Bytes connections to TLS and TCP listeners relayed, by protocol and direction (TLS records when passing through, decrypted bytes when terminating).\n# TYPE pylon_l4_bytes_total counter\n");
        for protocol in L4Protocol::ALL {
            let t = &self.l4[protocol as usize];
            for (direction, n) in [
                ("client_to_backend", &t.from_client),
                ("backend_to_client", &t.to_client),
            ] {
                let _ = writeln!(
                    s,
                    "pylon_l4_bytes_total{{protocol=\"{}\",direction=\"{direction}\"}} {}",
                    protocol.label(),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        self.udp.render(&mut s);
        let _ = writeln!(
            s,
            "# TYPE pylon_active_connections gauge\npylon_active_connections {}",
            self.active_connections.load(Ordering::Relaxed)
        );
        let version = self
            .config_version
            .lock()
            .expect("metrics poisoned")
            .replace('"', "");
        let _ = writeln!(
            s,
            "# TYPE pylon_config_info gauge\npylon_config_info{{version=\"{version}\"}} 1"
        );
        let _ = writeln!(
            s,
            "# TYPE pylon_config_ready gauge\npylon_config_ready {}",
            u8::from(ready)
        );
        let _ = writeln!(
            s,
            "# TYPE pylon_config_reloads_total counter\npylon_config_reloads_total {}",
            self.config_reloads.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE pylon_config_rejections_total counter\npylon_config_rejections_total {}",
            self.config_rejections.load(Ordering::Relaxed)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_engine() {
        let m = Metrics::default();
        m.record("ns/a", 200, Duration::from_millis(1), Engine::Native);
        for _ in 0..3 {
            m.record("ns/a", 200, Duration::from_millis(1), Engine::Hyper);
        }
        assert_eq!(
            (m.served_by(Engine::Native), m.served_by(Engine::Hyper)),
            (1, 3)
        );
        let text = m.render(true);
        assert!(
            text.contains("pylon_requests_by_engine_total{engine=\"native\"} 1\n")
                && text.contains("pylon_requests_by_engine_total{engine=\"hyper\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn l4_connections_are_counted_by_protocol_and_outcome() {
        let m = Metrics::default();
        m.record_l4(L4Protocol::Tls, L4Outcome::Relayed, 10, 20);
        m.record_l4(L4Protocol::Tls, L4Outcome::Relayed, 1, 2);
        m.record_l4(L4Protocol::Tls, L4Outcome::NoRoute, 0, 0);
        m.record_l4(L4Protocol::Tls, L4Outcome::HandshakeFailed, 0, 0);
        m.record_l4(L4Protocol::Tcp, L4Outcome::Relayed, 5, 7);
        assert_eq!(m.l4_connections(L4Protocol::Tls, L4Outcome::Relayed), 2);
        assert_eq!(m.l4_connections(L4Protocol::Tcp, L4Outcome::Relayed), 1);
        let text = m.render(true);
        for line in [
            "pylon_l4_connections_total{protocol=\"tls\",outcome=\"relayed\"} 2\n",
            "pylon_l4_connections_total{protocol=\"tls\",outcome=\"no_route\"} 1\n",
            "pylon_l4_connections_total{protocol=\"tls\",outcome=\"handshake_failed\"} 1\n",
            "pylon_l4_connections_total{protocol=\"tls\",outcome=\"backend_unavailable\"} 0\n",
            "pylon_l4_connections_total{protocol=\"tcp\",outcome=\"relayed\"} 1\n",
            "pylon_l4_bytes_total{protocol=\"tls\",direction=\"client_to_backend\"} 11\n",
            "pylon_l4_bytes_total{protocol=\"tls\",direction=\"backend_to_client\"} 22\n",
            "pylon_l4_bytes_total{protocol=\"tcp\",direction=\"client_to_backend\"} 5\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        // A TCP connection has no handshake to fail.
        assert!(!text.contains("protocol=\"tcp\",outcome=\"handshake_failed\""));
    }

    #[test]
    fn renders_series_and_caps_them() {
        let m = Metrics::default();
        m.record("ns/a", 200, Duration::from_millis(3), Engine::Hyper);
        m.record("ns/a", 200, Duration::from_millis(3), Engine::Hyper);
        m.record("ns/\"b", 503, Duration::from_secs(20), Engine::Hyper);
        let text = m.render(true);
        assert!(
            text.contains("pylon_requests_total{route=\"ns/a\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pylon_requests_total{route=\"ns/\\\"b\",code=\"503\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pylon_request_duration_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        // Buckets are cumulative: 3 ms counts in every bucket from 5 ms up, 20 s in none.
        for le in ["0.01", "10"] {
            assert!(
                text.contains(&format!(
                    "pylon_request_duration_seconds_bucket{{le=\"{le}\"}} 2\n"
                )),
                "{le}: {text}"
            );
        }
        assert!(
            text.contains("pylon_request_duration_seconds_bucket{le=\"0.002\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("pylon_request_duration_seconds_count 3"),
            "{text}"
        );
        for i in 0..MAX_SERIES + 10 {
            m.record(&format!("r{i}"), 200, Duration::ZERO, Engine::Hyper);
        }
        let series: usize = m.requests[0]
            .0
            .lock()
            .unwrap()
            .series
            .values()
            .map(BTreeMap::len)
            .sum();
        assert!(series <= MAX_SERIES + 1, "{series} series");
    }

    #[test]
    fn workers_count_apart_and_the_exposition_sums_them() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..3)
            .map(|w| {
                let m = m.clone();
                std::thread::spawn(move || {
                    crate::worker::set_worker(w);
                    for _ in 0..=w {
                        m.record("ns/r", 200, Duration::from_millis(3), Engine::Hyper);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Three shards were written (1, 2 and 3 requests); the exposition adds them up.
        let written = m
            .requests
            .iter()
            .filter(|s| s.0.lock().unwrap().latency_count > 0)
            .count();
        assert_eq!(written, 3);
        let text = m.render(true);
        for line in [
            "pylon_requests_total{route=\"ns/r\",code=\"200\"} 6\n",
            "pylon_request_duration_seconds_bucket{le=\"0.005\"} 6\n",
            "pylon_request_duration_seconds_count 6\n",
            "pylon_request_duration_seconds_sum 0.018\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
