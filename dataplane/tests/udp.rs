//! UDP listeners (protocol UDP, UDPRoutes): real UDP sockets on loopback. Echo backends answer
//! each datagram `<id> <datagram>` to whichever address sent it and remember the addresses, so
//! a test sees which backend a client's session went to and when a new session (a new
//! ephemeral socket) was opened.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proxy, free_port, get, wait_udp_port};
use pylon_dataplane::limits::Limits;
use pylon_dataplane::metrics::{Direction, UdpDrop, UdpOutcome};
use tokio::net::UdpSocket;

/// A UDP echo backend.
struct Echo {
    addr: SocketAddr,
    /// The addresses datagrams came from (the data plane's session sockets), in order.
    sources: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Echo {
    async fn start(id: &str) -> Echo {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let sources = Arc::new(Mutex::new(Vec::new()));
        let (id, seen) = (id.to_string(), sources.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                seen.lock().unwrap().push(from);
                let answer = format!("{id} {}", String::from_utf8_lossy(&buf[..n]));
                let _ = socket.send_to(answer.as_bytes(), from).await;
            }
        });
        Echo { addr, sources }
    }

    /// The distinct addresses it heard from: one per session.
    fn sessions(&self) -> usize {
        let sources = self.sources.lock().unwrap();
        sources.iter().collect::<BTreeSet<_>>().len()
    }
}

/// A client: an unconnected socket, so it sees where each reply comes from.
struct Client {
    socket: UdpSocket,
    to: SocketAddr,
}

impl Client {
    async fn new(port: u16) -> Client {
        Client {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            to: ([127, 0, 0, 1], port).into(),
        }
    }

    async fn send(&self, text: &str) {
        self.socket.send_to(text.as_bytes(), self.to).await.unwrap();
    }

    /// The next datagram within `wait`, and where it came from.
    async fn recv(&self, wait: Duration) -> Option<(String, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    }

    /// Sends `text` and returns the answer, which must come from the listener's address.
    async fn ask(&self, text: &str) -> String {
        self.send(text).await;
        let (answer, from) = self
            .recv(Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("no answer to {text:?}"));
        assert_eq!(from, self.to, "the reply comes from the address sent to");
        answer
    }

    /// Sends `text` and checks that nothing comes back.
    async fn unanswered(&self, text: &str) {
        self.send(text).await;
        let got = self.recv(Duration::from_millis(300)).await;
        assert_eq!(got, None, "{text:?} was answered");
    }

    /// Which backend answers (the id before the echoed text).
    async fn who(&self, text: &str) -> String {
        let answer = self.ask(text).await;
        answer
            .strip_suffix(&format!(" {text}"))
            .unwrap_or_else(|| panic!("{answer:?}"))
            .to_string()
    }
}

/// A loopback port free for both TCP and UDP.
fn free_ports() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A UDP listener on `port` with one UDPRoute `d/r` sending to `backends` (name, weight), and
/// the backends' endpoints; `extra` is more listeners (YAML list items).
fn config(
    port: u16,
    refs: &[(&str, u32)],
    endpoints: &[(&str, &[SocketAddr])],
    extra: &str,
) -> String {
    let refs: Vec<String> = refs
        .iter()
        .map(|(name, w)| format!("{{type: Backend, name: {name}, weight: {w}}}"))
        .collect();
    format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: udp
  port: {port}
  protocol: UDP
  routes:
  - {{kind: UDPRoute, namespace: d, name: r, creationTimestamp: '2024-01-01T00:00:00Z',
     rules: [{{backendRefs: [{}]}}]}}
{extra}
backends: {}
",
        refs.join(", "),
        common::endpoints(endpoints)
    )
}

fn one_backend(port: u16, a: &Echo) -> String {
    config(port, &[("a", 1)], &[("a", &[a.addr])], "")
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn quick_idle() -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_datagram_is_relayed_and_answered_from_the_listener_address() {
    let a = Echo::start("a").await;
    let port = free_ports();
    let p = Proxy::start(&one_backend(port, &a)).await;
    let c = Client::new(port).await;
    assert_eq!(c.ask("hello").await, "a hello");
    assert_eq!(c.ask("again").await, "a again");
    let udp = &p.shared.metrics.udp;
    assert_eq!(udp.active(), 1);
    assert_eq!(udp.datagrams(Direction::ClientToBackend), 2);
    assert_eq!(udp.datagrams(Direction::BackendToClient), 2);
    assert_eq!(a.sessions(), 1, "both datagrams went in one session");
    let text = p.shared.metrics.render(true);
    for line in [
        "pylon_udp_sessions_active 1\n",
        "pylon_udp_datagrams_total{direction=\"client_to_backend\"} 2\n",
        "pylon_udp_bytes_total{direction=\"backend_to_client\"} 14\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[tokio::test]
async fn two_clients_get_two_sessions_and_only_their_own_replies() {
    let a = Echo::start("a").await;
    let port = free_ports();
    let p = Proxy::start(&one_backend(port, &a)).await;
    let (one, two) = (Client::new(port).await, Client::new(port).await);
    one.send("one-1").await;
    two.send("two-1").await;
    one.send("one-2").await;
    two.send("two-2").await;
    for (c, name) in [(&one, "one"), (&two, "two")] {
        let mut got = BTreeSet::new();
        while let Some((answer, from)) = c.recv(Duration::from_millis(500)).await {
            assert_eq!(from, c.to);
            got.insert(answer);
        }
        let want: BTreeSet<String> = [1, 2].map(|i| format!("a {name}-{i}")).into();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(a.sessions(), 2);
    assert_eq!(p.shared.metrics.udp.active(), 2);
}

#[tokio::test]
async fn weights_spread_sessions_and_a_session_stays_on_its_backend() {
    let (a, b, z) = (
        Echo::start("a").await,
        Echo::start("b").await,
        Echo::start("z").await,
    );
    let port = free_ports();
    let yaml = config(
        port,
        &[("a", 1), ("b", 1), ("z", 0)],
        &[("a", &[a.addr]), ("b", &[b.addr]), ("z", &[z.addr])],
        "",
    );
    let _p = Proxy::start(&yaml).await;
    let mut by_backend: BTreeMap<String, usize> = BTreeMap::new();
    // Kept open to the end: a dropped client's port can be handed to the next one, which the
    // data plane would rightly take for the same session.
    let mut clients = Vec::new();
    for i in 0..40 {
        let c = Client::new(port).await;
        let first = c.who(&format!("c{i}")).await;
        assert_eq!(c.who("again").await, first, "client {i} changed backend");
        *by_backend.entry(first).or_default() += 1;
        clients.push(c);
    }
    // Even odds: 40 sessions all on one side would happen once in 10^11 runs.
    assert!(
        by_backend.get("a").is_some_and(|n| *n > 0),
        "{by_backend:?}"
    );
    assert!(
        by_backend.get("b").is_some_and(|n| *n > 0),
        "{by_backend:?}"
    );
    assert!(!by_backend.contains_key("z"), "weight 0: {by_backend:?}");
    assert_eq!(a.sessions() + b.sessions(), 40);
}

#[tokio::test]
async fn an_idle_session_ends_and_the_next_datagram_opens_another() {
    let a = Echo::start("a").await;
    let port = free_ports();
    let p = Proxy::start_with(&one_backend(port, &a), quick_idle()).await;
    p.shared
        .access_log
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let udp = &p.shared.metrics.udp;
    let c = Client::new(port).await;
    // Traffic keeps it open past the idle timeout.
    for i in 0..6 {
        assert_eq!(c.ask(&format!("{i}")).await, format!("a {i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(udp.sessions(UdpOutcome::Idle), 0);
    eventually("the session idled out", || {
        udp.sessions(UdpOutcome::Idle) == 1 && udp.active() == 0
    })
    .await;
    let log = String::from_utf8(p.shared.log.pending()).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(line["outcome"], "idle");
    assert_eq!(line["route"], "d/r");
    assert_eq!(line["backend"], a.addr.to_string());
    assert_eq!(line["port"], port);
    assert_eq!(line["datagrams_from_client"], 6);
    assert_eq!(line["datagrams_to_client"], 6);
    assert_eq!(line["peer"], c.socket.local_addr().unwrap().to_string());
    assert_eq!(a.sessions(), 1);
    assert_eq!(c.ask("later").await, "a later");
    assert_eq!(a.sessions(), 2, "a new session, from a new socket");
    assert_eq!(udp.active(), 1);
}

#[tokio::test]
async fn the_session_limit_drops_new_clients_and_counts_them() {
    let a = Echo::start("a").await;
    let port = free_ports();
    let limits = Limits {
        max_udp_sessions: 1,
        // Outlives `unanswered`'s wait.
        idle_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let p = Proxy::start_with(&one_backend(port, &a), limits).await;
    let udp = &p.shared.metrics.udp;
    let (one, two) = (Client::new(port).await, Client::new(port).await);
    assert_eq!(one.ask("1").await, "a 1");
    two.unanswered("2").await;
    assert_eq!(udp.drops(UdpDrop::SessionLimit), 1);
    assert_eq!(one.ask("3").await, "a 3", "the open session still relays");
    eventually("the first session idled out", || udp.active() == 0).await;
    assert_eq!(two.ask("4").await, "a 4", "a place is free again");
    assert_eq!(udp.drops(UdpDrop::SessionLimit), 1);
}

#[tokio::test]
async fn a_swap_keeps_sessions_on_their_endpoint_and_removing_the_port_ends_them() {
    let (a, b) = (Echo::start("a").await, Echo::start("b").await);
    let port = free_ports();
    let p = Proxy::start(&one_backend(port, &a)).await;
    let udp = &p.shared.metrics.udp;
    let old = Client::new(port).await;
    assert_eq!(old.who("1").await, "a");
    // The route now sends to b: the running session stays on a, a new one goes to b.
    let to_b = config(port, &[("b", 1)], &[("b", &[b.addr])], "");
    p.shared
        .apply("v2", pylon_config::parse_str(&to_b).unwrap())
        .unwrap();
    assert_eq!(old.who("2").await, "a");
    let new = Client::new(port).await;
    assert_eq!(new.who("3").await, "b");
    // Without a route the port stays bound: no new session, the running ones go on.
    let no_route = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners: [{{name: udp, port: {port}, protocol: UDP}}]"
    );
    p.shared
        .apply("v3", pylon_config::parse_str(&no_route).unwrap())
        .unwrap();
    Client::new(port).await.unanswered("4").await;
    assert_eq!(udp.drops(UdpDrop::NoRoute), 1);
    assert_eq!(new.who("5").await, "b");
    // Without the listener the port closes and its sessions end.
    let none = "apiVersion: pylon.dev/dataplane/v1\nlisteners: []";
    p.shared
        .apply("v4", pylon_config::parse_str(none).unwrap())
        .unwrap();
    eventually("both sessions ended as removed", || {
        udp.sessions(UdpOutcome::Removed) == 2 && udp.active() == 0
    })
    .await;
    eventually("the port is free", || {
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    old.unanswered("6").await;
    // And it binds again when a config brings it back.
    p.shared
        .apply(
            "v5",
            pylon_config::parse_str(&one_backend(port, &a)).unwrap(),
        )
        .unwrap();
    wait_udp_port(port).await;
    assert_eq!(old.who("7").await, "a");
}

#[tokio::test]
async fn datagrams_no_route_or_endpoint_takes_are_dropped_and_counted() {
    let port = free_ports();
    let yaml = config(port, &[("a", 1)], &[("a", &[])], "");
    let p = Proxy::start(&yaml).await;
    let c = Client::new(port).await;
    c.unanswered("1").await;
    c.unanswered("2").await;
    let udp = &p.shared.metrics.udp;
    assert_eq!(udp.drops(UdpDrop::NoEndpoint), 2);
    assert_eq!(udp.active(), 0);
    let text = p.shared.metrics.render(true);
    assert!(
        text.contains("pylon_udp_dropped_datagrams_total{reason=\"no_endpoint\"} 2\n"),
        "{text}"
    );
}

#[tokio::test]
async fn draining_takes_no_new_client_and_closes_the_port_once_sessions_idle_out() {
    let a = Echo::start("a").await;
    let port = free_ports();
    // Longer than `unanswered` waits, so the session lives through it.
    let limits = Limits {
        idle_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let p = Proxy::start_with(&one_backend(port, &a), limits).await;
    let old = Client::new(port).await;
    assert_eq!(old.ask("1").await, "a 1");
    p.drain.send(true).unwrap();
    let udp = &p.shared.metrics.udp;
    Client::new(port).await.unanswered("2").await;
    assert_eq!(udp.drops(UdpDrop::Draining), 1);
    assert_eq!(old.ask("3").await, "a 3", "a running session goes on");
    eventually("the session idled out", || {
        udp.sessions(UdpOutcome::Idle) == 1
    })
    .await;
    eventually("the port closed", || {
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_tcp_and_a_udp_listener_share_a_port_number() {
    let a = Echo::start("a").await;
    let http = common::Backend::start("h").await;
    let port = free_ports();
    let extra = format!(
        "- {{name: http, port: {port}, protocol: HTTP, routes: [{{kind: HTTPRoute, namespace: d, \
         name: web, creationTimestamp: '2024-01-01T00:00:00Z', \
         rules: [{{backendRefs: [{{type: Backend, name: h}}]}}]}}]}}"
    );
    let yaml = config(
        port,
        &[("a", 1)],
        &[("a", &[a.addr]), ("h", &[http.addr])],
        &extra,
    );
    let _p = Proxy::start(&yaml).await;
    let got = get(&format!("http://127.0.0.1:{port}/x"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.backend(), "h");
    assert_eq!(Client::new(port).await.ask("hi").await, "a hi");
}
