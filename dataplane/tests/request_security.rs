//! Request-path security (issue #22), as a table: exact client bytes through the whole data
//! plane, on both HTTP/1.1 engines, to a backend that records every byte it receives. Each row
//! asserts what the client gets and what the backend saw (or must never see).
//!
//! The routes: `a.example.com` serves only `/public` and `/resp` (with `x-route: a` added);
//! `secret.example.com` serves everything, but only to requests with `x-admin: yes` (with
//! `x-route: secret`). A row that got past those rules would show in the backend's bytes.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pylon_dataplane::limits::Limits;
use pylon_dataplane::server::Http1;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that records the bytes of every connection (lower-cased, concatenated) and
/// answers by path. It behaves like a real server would when asked to upgrade: `Upgrade: h2c`
/// gets a 101 and everything after it is taken as the new protocol's bytes (recorded), so a
/// tunnel the proxy should not have opened is visible in `seen`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(record_and_answer(s, record.clone()));
            }
        });
        Recorder { addr, seen }
    }

    /// What the backend received since the last call, lower-cased.
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.seen.lock().unwrap());
        String::from_utf8_lossy(&bytes).to_lowercase()
    }
}

async fn record_and_answer(mut s: TcpStream, seen: Arc<Mutex<Vec<u8>>>) {
    let mut buf = Vec::new();
    let read = async |s: &mut TcpStream, buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                seen.lock().unwrap().extend_from_slice(&chunk[..n]);
                buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    };
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !read(&mut s, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        // The body: by Content-Length, or up to the last chunk.
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        let consumed = if head.contains("transfer-encoding: chunked") {
            loop {
                if let Some(i) = buf[end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    break end + i + 5;
                }
                if !read(&mut s, &mut buf).await {
                    return;
                }
            }
        } else {
            while buf.len() < end + len {
                if !read(&mut s, &mut buf).await {
                    return;
                }
            }
            end + len
        };
        buf.drain(..consumed);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        if head.contains("upgrade: h2c") {
            let _ = s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                .await;
            // Whatever follows is the new protocol: record it until the peer goes away.
            while read(&mut s, &mut buf).await {}
            return;
        }
        if s.write_all(&answer(&path)).await.is_err() {
            return;
        }
    }
}

/// The backend's answer to `path`: `/resp/...` are malformed or unusual answers, anything else
/// is a 200 naming the path.
fn answer(path: &str) -> Vec<u8> {
    let chunked =
        |body: &str| format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    match path {
        // F14: junk after the chunk size, NUL in a chunk extension, a trailer that is no field.
        "/resp/size-junk" => chunked("5 5\r\nhello\r\n0\r\n\r\n").into_bytes(),
        "/resp/ext-nul" => chunked("5;a=\0\r\nhello\r\n0\r\n\r\n").into_bytes(),
        "/resp/bad-trailer" => chunked("5\r\nhello\r\n0\r\nnot a field\r\n\r\n").into_bytes(),
        // F15: HTTP/1.0 has no chunked coding; chunked twice is not a framing.
        "/resp/http10-chunked" => {
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec()
        }
        "/resp/chunked-twice" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
        // A response head of 70,032 bytes: over the 64 KiB limit.
        "/resp/huge-head" => {
            let head = format!("HTTP/1.1 200 OK\r\nX-Filler: {}\r\n", "x".repeat(70_000));
            format!("{head}Content-Length: 2\r\n\r\nok").into_bytes()
        }
        "/resp/early-hints" => {
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec()
        }
        "/resp/unasked-101" => {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
                .to_vec()
        }
        _ => {
            let text = format!("served {path}");
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        }
    }
}

fn routes(backend: SocketAddr) -> String {
    let modifier = |v: &str| {
        format!(
            "filters: [{{type: RequestHeaderModifier, set: [{{name: x-route, value: {v}}}]}}], "
        )
    };
    let a = modifier("a");
    let s = modifier("secret");
    http_listener(
        0,
        &format!(
            "
  - kind: HTTPRoute
    namespace: d
    name: a
    creationTimestamp: '2024-01-01T00:00:00Z'
    hostnames: [a.example.com]
    rules:
    - {{matches: [{{path: {{type: PathPrefix, value: /public}}}}, {{path: {{type: PathPrefix, value: /resp}}}}], {a}backendRefs: [{{type: Backend, name: b}}]}}
  - kind: HTTPRoute
    namespace: d
    name: secret
    creationTimestamp: '2024-01-01T00:00:00Z'
    hostnames: [secret.example.com]
    rules:
    - {{matches: [{{headers: [{{name: x-admin, value: 'yes'}}]}}], {s}backendRefs: [{{type: Backend, name: b}}]}}"
        ),
        &format!("{{b: {{endpoints: [{{address: '{backend}'}}]}}}}"),
    )
}

/// One row: the bytes a client sends, the status line it must get first, and what the
/// backend must (`has`) and must never (`lacks`) have received, lower-cased.
struct Row {
    name: &'static str,
    send: Vec<u8>,
    status: &'static str,
    has: &'static [&'static str],
    lacks: &'static [&'static str],
    /// Bytes the client must never get.
    client_lacks: &'static [&'static str],
}

fn row(name: &'static str, send: impl Into<Vec<u8>>, status: &'static str) -> Row {
    Row {
        name,
        send: send.into(),
        status,
        has: &[],
        lacks: &[],
        client_lacks: &[],
    }
}

impl Row {
    fn has(mut self, has: &'static [&'static str]) -> Row {
        self.has = has;
        self
    }
    fn lacks(mut self, lacks: &'static [&'static str]) -> Row {
        self.lacks = lacks;
        self
    }
    fn client_lacks(mut self, lacks: &'static [&'static str]) -> Row {
        self.client_lacks = lacks;
        self
    }
}

/// `GET path` to `host`, closing after.
fn get_req(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn post_chunked(te: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /public HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: {te}\r\nConnection: close\r\n\r\n{body}"
    )
    .into_bytes()
}

fn table(engine: Http1) -> Vec<Row> {
    let a = "a.example.com";
    let long_line = format!(
        "GET /public/{} HTTP/1.1\r\nHost: {a}\r\n\r\n",
        "a".repeat(70_000)
    );
    let long_field = format!(
        "GET /public HTTP/1.1\r\nHost: {a}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    vec![
        row("served", get_req("/public", a), "HTTP/1.1 200")
            .has(&["get /public http/1.1", "host: a.example.com", "x-route: a"]),
        // F1 (the tunnel half is its own test below): Upgrade names no protocol we relay.
        row(
            "h2c upgrade is a plain request",
            "GET /public HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            "HTTP/1.1 200",
        )
        .has(&["get /public http/1.1"])
        .lacks(&["upgrade", "http2-settings", "aamaaabk"]),
        row(
            "websocket without connection: upgrade is not an upgrade",
            "GET /public/ws HTTP/1.1\r\nHost: a.example.com\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200",
        )
        .lacks(&["upgrade"]),
        // F2: the request-target's authority wins, and is what the backend gets.
        row(
            "absolute-form authority is routed and forwarded",
            "GET http://a.example.com/public HTTP/1.1\r\nHost: secret.example.com\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200",
        )
        .has(&["get /public http/1.1", "host: a.example.com", "x-route: a"])
        .lacks(&["secret"]),
        row(
            "absolute-form to the secret host still needs its header",
            "GET http://secret.example.com/admin HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 404",
        )
        .lacks(&["/admin"]),
        // F3: a Host that is no authority.
        row("userinfo and port", get_req("/public", "a.example.com:1@secret.example.com"), "HTTP/1.1 400")
            .lacks(&["secret"]),
        row("port not numeric", get_req("/public", "a.example.com:abc"), "HTTP/1.1 400"),
        row("port out of range", get_req("/public", "a.example.com:65536"), "HTTP/1.1 400"),
        row("userinfo", get_req("/public", "u@a.example.com"), "HTTP/1.1 400"),
        row("percent in host", get_req("/public", "a%2eexample.com"), "HTTP/1.1 400"),
        row("two hosts", "GET /public HTTP/1.1\r\nHost: a.example.com\r\nHost: secret.example.com\r\n\r\n", "HTTP/1.1 400"),
        row("port is kept", get_req("/public", "a.example.com:8080"), "HTTP/1.1 200")
            .has(&["host: a.example.com:8080"]),
        // F4: the path is normalised before matching and forwarded normalised.
        row("dot-segments leave the prefix", get_req("/public/../admin", a), "HTTP/1.1 404")
            .lacks(&["admin"]),
        row("encoded dot-segments leave the prefix", get_req("/public/%2e%2e/admin", a), "HTTP/1.1 404")
            .lacks(&["admin"]),
        row("dot-segments inside the prefix", get_req("/public/./x/../y//z", a), "HTTP/1.1 200")
            .has(&["get /public/y/z http/1.1"]),
        row("unreserved decoded, reserved kept", get_req("/public/%7euser/a%2fb?q=%2e", a), "HTTP/1.1 200")
            .has(&["get /public/~user/a%2fb?q=%2e http/1.1"]),
        row("bad percent-encoding", get_req("/public/%zz", a), "HTTP/1.1 400"),
        // F8: a coding the proxy would have to drop.
        row("gzip, chunked", post_chunked("gzip, chunked", "4\r\ngzip\r\n0\r\n\r\n"), "HTTP/1.1 501")
            .lacks(&["post"]),
        row("chunked, chunked", post_chunked("chunked, chunked", "4\r\nabcd\r\n0\r\n\r\n"), "HTTP/1.1 400")
            .lacks(&["post"]),
        // F9: a malformed chunked body is the client's fault.
        row("chunk size 0x3", post_chunked("chunked", "0x3\r\nabc\r\n0\r\n\r\n"), "HTTP/1.1 400"),
        row("chunk size overflow", post_chunked("chunked", "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), "HTTP/1.1 400"),
        row("chunk size bare LF", post_chunked("chunked", "3\nabc\r\n0\r\n\r\n"), "HTTP/1.1 400"),
        row("chunk data without CRLF", post_chunked("chunked", "3\r\nabcX\r\n0\r\n\r\n"), "HTTP/1.1 400"),
        row("chunk size junk", post_chunked("chunked", "3 3\r\nabc\r\n0\r\n\r\n"), "HTTP/1.1 400"),
        row("well-formed chunked", post_chunked("chunked", "3;ext=1\r\nabc\r\n0\r\n\r\n"), "HTTP/1.1 200")
            .has(&["abc"]),
        // F10, F11: methods and targets that are not a request for a resource here.
        row("CONNECT", "CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n", "HTTP/1.1 405")
            .lacks(&["connect"]),
        row("TRACE", "TRACE /public HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "HTTP/1.1 405")
            .lacks(&["trace"]),
        row("asterisk outside OPTIONS", get_req("*", a), "HTTP/1.1 400").lacks(&["get"]),
        // F13: a request line over the limit is 414, a field section over it 431. hyper
        // (which owns the connection on its engine) answers both with 431.
        row(
            "request line too long",
            long_line,
            if engine == Http1::Native { "HTTP/1.1 414" } else { "HTTP/1.1 431" },
        )
        .lacks(&["get"]),
        row("header too large", long_field, "HTTP/1.1 431").lacks(&["get"]),
        // F14, F15: malformed framing from the backend is not relayed: the answer is cut off
        // (no last chunk) or re-framed, never passed on byte for byte.
        row("response chunk size junk", get_req("/resp/size-junk", a), "")
            .client_lacks(&["5 5", "0\r\n\r\n"]),
        row("response chunk extension NUL", get_req("/resp/ext-nul", a), "")
            .client_lacks(&["\0"]),
        row("response malformed trailer", get_req("/resp/bad-trailer", a), "")
            .client_lacks(&["not a field"]),
        row("HTTP/1.0 response with chunked", get_req("/resp/http10-chunked", a), "HTTP/1.1 502"),
        row("response chunked twice", get_req("/resp/chunked-twice", a), "HTTP/1.1 502"),
        row("response head over 64 KiB", get_req("/resp/huge-head", a), "HTTP/1.1 502")
            .client_lacks(&["x-filler"]),
        row("101 not asked for", get_req("/resp/unasked-101", a), "HTTP/1.1 502")
            .client_lacks(&["101"]),
        // hyper's server cannot send an interim answer: on its engine the 103 is dropped.
        row(
            "103 relayed before the answer",
            get_req("/resp/early-hints", a),
            if engine == Http1::Native { "HTTP/1.1 103" } else { "HTTP/1.1 200" },
        ),
    ]
}

/// Writes `bytes` on a new connection and reads until the proxy closes it, or has said nothing
/// for half a second after answering (a connection kept alive).
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A refused request may be answered (and the socket closed) before all of it is written.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let wait = if out.is_empty() { 3000 } else { 500 };
        match tokio::time::timeout(Duration::from_millis(wait), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}

async fn start(engine: Http1) -> (Recorder, u16, Proxy) {
    let b = Recorder::start().await;
    let port = free_port();
    let yaml = routes(b.addr).replacen("port: 0", &format!("port: {port}"), 1);
    let p = Proxy::start_engine(&yaml, Limits::default(), engine).await;
    (b, port, p)
}

#[tokio::test]
async fn each_row_gets_its_answer_and_the_backend_only_what_was_routed() {
    let mut failures = Vec::new();
    for engine in [Http1::Native, Http1::Hyper] {
        let (b, port, _p) = start(engine).await;
        for r in table(engine) {
            b.take();
            let got = String::from_utf8_lossy(&exchange(port, &r.send).await).into_owned();
            // Anything the proxy forwarded arrived before the answer the client read; a little
            // more time for what the proxy should not have forwarded at all.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let seen = b.take();
            let mut wrong = Vec::new();
            if !got.starts_with(r.status) {
                wrong.push(format!("status: want {:?}", r.status));
            }
            // A refused request closes the connection: what follows it is not trusted.
            let refused = ["400", "405", "414", "431", "501"];
            if refused.iter().any(|c| r.status.ends_with(c)) && !got.contains("connection: close") {
                wrong.push("refused without closing".into());
            }
            for h in r.has {
                if !seen.contains(h) {
                    wrong.push(format!("backend lacks {h:?}"));
                }
            }
            for l in r.lacks {
                if seen.contains(l) {
                    wrong.push(format!("backend got {l:?}"));
                }
            }
            for l in r.client_lacks {
                if got.contains(l) {
                    wrong.push(format!("client got {l:?}"));
                }
            }
            if !wrong.is_empty() {
                let cut = |s: &str| s.chars().take(300).collect::<String>();
                failures.push(format!(
                    "{engine:?} {}: {}\n  client: {:?}\n  backend: {:?}",
                    r.name,
                    wrong.join("; "),
                    cut(&got),
                    cut(&seen)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// F1 whole: the upgrade request is answered as a plain request, and the HTTP/2 preface and a
/// HEADERS frame for `/admin/secret` that follow it never reach the backend.
#[tokio::test]
async fn an_h2c_upgrade_opens_no_tunnel() {
    for engine in [Http1::Native, Http1::Hyper] {
        let (b, port, _p) = start(engine).await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            b"GET /public HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        )
        .await
        .unwrap();
        let first = read_answer(&mut s).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first:?}");
        // What a client that believed it had upgraded sends next.
        let _ = s
            .write_all(&h2_preface_and_headers(
                "/admin/secret",
                "secret.example.com",
            ))
            .await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        let rest = String::from_utf8_lossy(&rest);
        assert!(!rest.contains("served"), "{engine:?}: {rest:?}");
        let seen = b.take();
        assert!(
            !seen.contains("admin"),
            "{engine:?}: the backend got {seen:?}"
        );
        assert!(
            !seen.contains("upgrade"),
            "{engine:?}: the backend got {seen:?}"
        );
    }
}

/// Reads one answer with a Content-Length body.
async fn read_answer<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .to_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length: ")
                            .map(|v| v.parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return text;
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return text,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .unwrap()
}

/// The HTTP/2 connection preface, an empty SETTINGS frame and a HEADERS frame for `GET path`
/// at `authority` (HPACK literals without Huffman, so the bytes show in a recording).
fn h2_preface_and_headers(path: &str, authority: &str) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // :method GET (static 2), :scheme http (static 6), then literal values without indexing
    // for :path (static name 4) and :authority (static name 1).
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, authority.len() as u8]);
    block.extend_from_slice(authority.as_bytes());
    let len = block.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[1, 0x05, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

/// F2 and F12 over HTTP/2: `:authority` wins over a `host` field, and two `cookie` fields
/// reach an HTTP/1.1 backend as one.
#[tokio::test]
async fn http2_authority_wins_and_cookies_are_joined() {
    let (b, port, _p) = start(Http1::Native).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://a.example.com:{port}/public/h2"))
        .header("host", "secret.example.com")
        .header("x-admin", "yes")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{resp:?}");
    let seen = b.take();
    assert!(
        seen.contains(&format!("host: a.example.com:{port}\r\n")),
        "{seen:?}"
    );
    assert!(seen.contains("x-route: a\r\n"), "{seen:?}");
    assert!(!seen.contains("secret"), "{seen:?}");
    assert_eq!(seen.matches("cookie:").count(), 1, "{seen:?}");
    assert!(seen.contains("cookie: a=1; b=2\r\n"), "{seen:?}");
}

/// F17: after ALPN `h2` the connection is HTTP/2 only; after `http/1.1`, HTTP/1.1 only.
#[tokio::test]
async fn alpn_fixes_the_protocol() {
    let b = Recorder::start().await;
    let port = free_port();
    let json = |s: &str| serde_json::to_string(s).unwrap();
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: https
  port: {port}
  protocol: HTTPS
  hostname: '*.example.com'
  tls: {{certificates: [{{certPem: {}, keyPem: {}}}]}}
  routes: [{{kind: HTTPRoute, namespace: d, name: r, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{backendRefs: [{{type: Backend, name: b}}]}}]}}]
backends: {{b: {{endpoints: [{{address: '{}'}}]}}}}
",
        json(&pem("example.pem")),
        json(&pem("example.key")),
        b.addr
    );
    let _p = Proxy::start(&yaml).await;
    // HTTP/1.1 bytes on an h2 connection: no HTTP/1.1 answer, nothing forwarded.
    let mut s = tls(port, b"h2").await;
    let _ = s
        .write_all(b"GET /h1-on-h2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    assert!(
        !out.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // The HTTP/2 preface on an http/1.1 connection: closed, not served as HTTP/2.
    let mut s = tls(port, b"http/1.1").await;
    let _ = s
        .write_all(&h2_preface_and_headers("/h2-on-h1", "a.example.com"))
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    let seen = b.take();
    assert!(
        !seen.contains("h1-on-h2") && !seen.contains("h2-on-h1"),
        "{seen:?}"
    );
    // Both protocols still serve when spoken as negotiated.
    for h2 in [true, false] {
        let got = tls_get(port, "a.example.com", "a.example.com", "/ok", h2)
            .await
            .unwrap();
        assert_eq!(got.status, 200, "h2={h2}");
    }
}

async fn tls(port: u16, alpn: &[u8]) -> impl AsyncRead + AsyncWrite + Unpin {
    let roots = pylon_config::pem::root_store(&pem("ca.pem")).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.example.com").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}
