//! The native HTTP/1.1 path against a raw backend that answers in every framing HTTP/1.1
//! allows: client-visible behaviour is the same as the hyper path's, backend connections are
//! pooled, a request timeout also covers the answer's body, and what the native path does not
//! serve (HTTP/1.0, chunked request bodies) reaches the backend through hyper.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pylon_dataplane::limits::Limits;
use pylon_dataplane::metrics::Engine;
use pylon_dataplane::server::Http1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend written against the socket: each request's path picks a canned answer. Counts
/// the connections it accepted.
struct RawBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// The path of every request received, in order.
    paths: Arc<Mutex<Vec<String>>>,
}

impl RawBackend {
    async fn start() -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), paths.clone());
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let id = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_raw(s, id, seen.clone()));
            }
        });
        RawBackend {
            addr,
            connections,
            paths,
        }
    }
}

async fn serve_raw(mut s: TcpStream, id: usize, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // One request head (and a Content-Length body) at a time.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        seen.lock().unwrap().push(path.clone());
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < end + len {
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..end + len).skip(end).collect();
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        let answer = match path.as_str() {
            "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                           5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
                .to_string(),
            "/until-close" => {
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close".into()
            }
            "/interim" => "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                           HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .into(),
            "/stall" => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".into(),
            "/close-after" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into(),
            // A body in a transfer coding the proxy does not undo (the bytes stand for it).
            "/gzip-chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                                4\r\ngzip\r\n0\r\n\r\n"
                .into(),
            // Both framing fields (Transfer-Encoding wins) and a 204 that names a coding.
            "/te-and-length" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
                                 Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .into(),
            "/no-content-te" => {
                "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n".into()
            }
            "/hop" => "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\n\
                       Keep-Alive: timeout=5\r\nX-Private: 1\r\nProxy-Connection: x\r\n\
                       X-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
                .into(),
            "/switch" => {
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n\
                          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
                    .into()
            }
            _ => {
                let text = format!("conn={id} len={} sum={sum} path={path}", body.len());
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{text}",
                    text.len()
                )
            }
        };
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        match path.as_str() {
            "/until-close" | "/close-after" => return,
            "/stall" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                return;
            }
            _ => {}
        }
    }
}

/// Writes `request` on a new connection and reads until the proxy closes it (or 5 s).
async fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status line and body of each answer in `text`, headers left out.
fn answers(text: &str) -> Vec<(String, String)> {
    text.split("HTTP/1.1 ")
        .filter(|a| !a.is_empty())
        .map(|a| {
            let status = a.lines().next().unwrap_or_default().to_string();
            let body = a.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
            (status, body)
        })
        .collect()
}

#[tokio::test]
async fn answers_in_every_framing_match_the_hyper_path() {
    let b = RawBackend::start().await;
    let mut seen = Vec::new();
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let p = Proxy::start_engine(&one_route(port, b.addr, ""), Limits::default(), engine).await;
        let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
        let mut got = Vec::new();
        for path in ["/chunked", "/until-close", "/interim", "/plain"] {
            let r = get(&url(path), &[]).await;
            got.push((path, r.status.as_u16(), r.body));
        }
        let head = raw(
            port,
            b"HEAD /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "{engine:?}: {head:?}"
        );
        assert!(
            head.ends_with("\r\n\r\n"),
            "{engine:?}: a HEAD answer has no body: {head:?}"
        );
        // Every request (4 GETs and the HEAD) was served by the engine under test.
        let served = |e| p.shared.metrics.served_by(e);
        let want = match engine {
            Http1::Native => (5, 0),
            Http1::Hyper => (0, 5),
        };
        assert_eq!(
            (served(Engine::Native), served(Engine::Hyper)),
            want,
            "{engine:?}"
        );
        seen.push(got);
    }
    let native = &seen[0];
    assert_eq!(native[0], ("/chunked", 200, "hello world".to_string()));
    assert_eq!(native[1], ("/until-close", 200, "until close".to_string()));
    assert_eq!(native[2], ("/interim", 200, "ok".to_string()));
    assert!(native[3].2.contains("path=/plain"), "{:?}", native[3]);
    // The same answers through hyper (but for which backend connection served /plain).
    let strip = |v: &[(&str, u16, String)]| {
        v.iter()
            .map(|(p, s, b)| {
                (
                    p.to_string(),
                    *s,
                    b.split(" len=").nth(1).map_or(b.clone(), str::to_string),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&seen[0]), strip(&seen[1]));
}

#[tokio::test]
async fn request_bodies_pipelined_requests_and_pooled_backend_connections() {
    let b = RawBackend::start().await;
    let port = free_port();
    let _p = Proxy::start(&one_route(port, b.addr, "")).await;
    // A body much larger than one read, sent with its head.
    let body = vec![7u8; 300_000];
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let got = raw(port, &req).await;
    assert!(
        got.contains("len=300000 sum=2100000 path=/upload"),
        "{got:?}"
    );

    // Three requests in one write come back in order, on one backend connection.
    let before = b.connections.load(Ordering::SeqCst);
    let three = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = answers(&raw(port, three).await);
    assert_eq!(got.len(), 3, "{got:?}");
    for (i, (status, body)) in got.iter().enumerate() {
        assert_eq!(status, "200 OK");
        assert!(body.ends_with(&format!("path=/{}", i + 1)), "{body:?}");
    }
    let conns: std::collections::HashSet<_> = got
        .iter()
        .map(|(_, b)| b.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(conns.len(), 1, "one pooled backend connection: {got:?}");
    assert!(b.connections.load(Ordering::SeqCst) - before <= 1);

    // A backend that closes its end after answering: the next request still succeeds.
    for _ in 0..3 {
        assert_eq!(
            get(&format!("http://127.0.0.1:{port}/close-after"), &[])
                .await
                .status,
            200
        );
        assert_eq!(
            get(&format!("http://127.0.0.1:{port}/after"), &[])
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn the_request_timeout_covers_the_answer_body() {
    let b = RawBackend::start().await;
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let rules = one_route(port, b.addr, "timeouts: {request: 500ms}, ");
        let _p = Proxy::start_engine(&rules, Limits::default(), engine).await;
        let t = std::time::Instant::now();
        let got = raw(port, b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // The head and the first bytes went out; then the timeout closed the connection
        // instead of waiting for the backend's remaining 97 bytes.
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n"),
            "{engine:?}: {got:?}"
        );
        assert!(got.ends_with("abc"), "{engine:?}: {got:?}");
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{engine:?}: not cut off: {took:?}"
        );
    }
    // Before any byte of the answer, the same timeout is a 504.
    let port = free_port();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules = one_route(
        port,
        silent.local_addr().unwrap(),
        "timeouts: {request: 300ms}, ",
    );
    let _p = Proxy::start(&rules).await;
    let got = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 504"), "{got:?}");
}

#[tokio::test]
async fn what_the_native_path_does_not_serve_goes_through_hyper() {
    let b = RawBackend::start().await;
    let port = free_port();
    let p = Proxy::start(&one_route(port, b.addr, "")).await;
    let got = raw(port, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(
        got.starts_with("HTTP/1.0 200") && got.contains("path=/old"),
        "{got:?}"
    );
    let served = |e| p.shared.metrics.served_by(e);
    assert_eq!(
        (served(Engine::Native), served(Engine::Hyper)),
        (0, 1),
        "HTTP/1.0 goes to hyper"
    );
    // A native request first, then a chunked one on the same connection.
    let got = raw(
        port,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /chunked-up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    let got = answers(&got);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].1.ends_with("path=/first"), "{got:?}");
    // hyper forwards the 3-byte body with a length or chunked; either way it arrives whole.
    assert!(got[1].0.starts_with("200"), "{got:?}");
}

#[tokio::test]
async fn the_upstream_head_announces_exactly_the_body_that_is_relayed() {
    let b = RawBackend::start().await;
    let port = free_port();
    let _p = Proxy::start(&one_route(port, b.addr, "")).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: internal\r\n\r\n";
    // A Connection header naming Content-Length must not strip the body's framing (the backend
    // would read the body as a second request), nor may a list value reach the backend as is.
    for length in [
        format!("{}", smuggled.len()),
        format!("{0}, {0}", smuggled.len()),
    ] {
        let req = format!(
            "POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\
             Connection: content-length\r\n\r\n{smuggled}"
        );
        let got = raw(port, req.as_bytes()).await;
        assert!(
            got.contains(&format!("len={} ", smuggled.len())),
            "{length}: {got:?}"
        );
    }
    // Nor may a filter that removes it.
    let port2 = free_port();
    let filtered = "filters: [{type: RequestHeaderModifier, remove: [content-length]}], ";
    let _p2 = Proxy::start(&one_route(port2, b.addr, filtered)).await;
    let req = format!(
        "POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let got = raw(port2, req.as_bytes()).await;
    assert!(got.contains(&format!("len={} ", smuggled.len())), "{got:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paths = b.paths.lock().unwrap().clone();
    assert!(!paths.iter().any(|p| p == "/smuggled"), "{paths:?}");
}

#[tokio::test]
async fn an_unasked_for_switching_protocols_is_a_bad_gateway() {
    let b = RawBackend::start().await;
    let port = free_port();
    let _p = Proxy::start(&one_route(port, b.addr, "")).await;
    let got = raw(
        port,
        b"GET /switch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 502"), "{got:?}");
}

#[tokio::test]
async fn a_request_timeout_during_a_local_answer_closes_instead_of_answering_twice() {
    let b = RawBackend::start().await;
    let port = free_port();
    let redirect = "timeouts: {request: 200ms}, filters: [{type: RequestRedirect, port: 8443}], ";
    let _p = Proxy::start(&one_route(port, b.addr, redirect)).await;
    // Pipelined requests, answers left unread until the socket buffers are full: some answer's
    // write blocks past the request timeout.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let one = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200));
    let (mut rd, mut wr) = s.split();
    let flood = async {
        for _ in 0..100_000 {
            if wr.write_all(one.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flood).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), rd.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 30"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(
        !text.contains("HTTP/1.1 504"),
        "a second answer inside the first"
    );
}

#[tokio::test]
async fn bodies_a_local_answer_did_not_need_are_dropped_and_the_connection_kept() {
    let b = RawBackend::start().await;
    let port = free_port();
    let redirect = "filters: [{type: RequestRedirect, port: 8443}], ";
    let _p = Proxy::start(&one_route(port, b.addr, redirect)).await;
    // A 100 kB body answered by a redirect, then a second request on the same connection.
    let mut req = b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'z', 100_000));
    req.extend_from_slice(b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let got = answers(&raw(port, &req).await);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(s, _)| s.starts_with("302")), "{got:?}");
    // A body too large to drop: the answer still arrives whole before the connection closes
    // (a close with unread data would reset it).
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n";
    s.write_all(head).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let send = async {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..(8_000_000 / chunk.len()) {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let mut out = Vec::new();
    let (_, read) = tokio::join!(send, async {
        tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out)).await
    });
    let text = String::from_utf8_lossy(&out);
    assert!(matches!(read, Ok(Ok(_))), "{read:?} after {text:?}");
    assert!(
        text.starts_with("HTTP/1.1 302") && text.contains("connection: close"),
        "{text:?}"
    );
    assert!(!b.paths.lock().unwrap().iter().any(|p| p == "/big"));
}

#[tokio::test]
async fn a_missing_or_repeated_host_is_a_bad_request_on_both_engines() {
    let b = RawBackend::start().await;
    for engine in [Http1::Native, Http1::Hyper] {
        let port = free_port();
        let _p = Proxy::start_engine(&one_route(port, b.addr, ""), Limits::default(), engine).await;
        for req in [
            &b"GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            b"GET /twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        ] {
            let got = raw(port, req).await;
            assert!(got.starts_with("HTTP/1.1 400"), "{engine:?}: {got:?}");
        }
    }
    let paths = b.paths.lock().unwrap().clone();
    assert!(paths.is_empty(), "{paths:?}");
}

#[tokio::test]
async fn answers_keep_their_transfer_codings_and_lose_their_hop_by_hop_fields() {
    let b = RawBackend::start().await;
    // Without response filters the native path relays the backend's head as received (but for
    // the hop-by-hop fields); with one it builds the head from the filtered headers.
    let filtered =
        "filters: [{type: ResponseHeaderModifier, set: [{name: x-filtered, value: '1'}]}], ";
    for engine in [Http1::Native, Http1::Hyper] {
        for rule in ["", filtered] {
            let port = free_port();
            let _p = Proxy::start_engine(&one_route(port, b.addr, rule), Limits::default(), engine)
                .await;
            let case = format!("{engine:?}, filtered: {}", !rule.is_empty());
            let text = raw(
                port,
                b"GET /gzip-chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .to_ascii_lowercase();
            assert!(
                text.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
                "{case}: {text:?}"
            );
            assert!(
                text.ends_with("\r\n\r\n4\r\ngzip\r\n0\r\n\r\n"),
                "{case}: {text:?}"
            );
            let text = raw(
                port,
                b"GET /hop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .to_ascii_lowercase();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(body, "ok", "{case}");
            assert!(head.contains("\r\nx-kept: yes"), "{case}: {head:?}");
            assert_eq!(
                head.contains("\r\nx-filtered: 1"),
                !rule.is_empty(),
                "{case}"
            );
            for gone in ["x-private", "keep-alive", "proxy-connection"] {
                assert!(
                    !head.contains(&format!("\r\n{gone}:")),
                    "{case}: {gone} in {head:?}"
                );
            }
            // A coded body loses the backend's Content-Length; an answer without a body loses
            // the coding (RFC 9112 §6.1, §6.3).
            let text = raw(
                port,
                b"GET /te-and-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .to_ascii_lowercase();
            assert!(text.starts_with("http/1.1 200"), "{case}: {text:?}");
            assert!(
                text.contains("\r\ntransfer-encoding: chunked\r\n"),
                "{case}: {text:?}"
            );
            assert!(!text.contains("content-length"), "{case}: {text:?}");
            assert!(
                text.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                "{case}: {text:?}"
            );
            for request in [
                &b"HEAD /te-and-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
                b"GET /no-content-te HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ] {
                let text = raw(port, request).await.to_ascii_lowercase();
                assert!(text.starts_with("http/1.1 20"), "{case}: {text:?}");
                assert!(!text.contains("transfer-encoding"), "{case}: {text:?}");
                assert!(text.ends_with("\r\n\r\n"), "{case}: {text:?}");
            }
        }
    }
}
