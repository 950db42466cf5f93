//! Connection limits and graceful drain: oversized heads get 431, slow heads and idle
//! keep-alive connections are closed, connections above the cap are refused, and a drain lets
//! in-flight requests finish while new connections are no longer accepted.

mod common;

use std::time::Duration;

use common::*;
use pylon_dataplane::limits::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits() -> Limits {
    Limits {
        max_header_bytes: 16 * 1024,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(1),
        max_connections: 3,
        ..Limits::default()
    }
}

/// Reads until EOF (or `limit`); returns what arrived and whether the peer closed.
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn oversized_and_slow_heads_are_cut_off() {
    let a = Backend::start("a").await;
    let port = free_port();
    let _p = Proxy::start_with(&one_route(port, a.addr, ""), limits()).await;

    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let (resp, closed) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert!(
        resp.starts_with("HTTP/1.1 431"),
        "oversized head answered {resp:?}"
    );
    assert!(closed);

    // Slowloris: half a request head, then silence.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert!(
        closed && t.elapsed() < Duration::from_secs(2),
        "slow head not cut off"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let a = Backend::start("a").await;
    let port = free_port();
    let mut l = limits();
    l.header_read_timeout = Duration::from_secs(30);
    let _p = Proxy::start_with(&one_route(port, a.addr, ""), l).await;
    // A slow request (1.5 s, longer than the 1 s idle timeout) is not cut off ...
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // ... but the idle keep-alive connection afterwards is.
    let t = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "idle keep-alive connection not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "closed too early: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn connections_above_the_cap_are_refused() {
    let a = Backend::start("a").await;
    let port = free_port();
    let mut l = limits();
    l.header_read_timeout = Duration::from_secs(10);
    let _p = Proxy::start_with(&one_route(port, a.addr, ""), l).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut extra = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (resp, closed) = read_until_close(&mut extra, Duration::from_secs(2)).await;
    assert!(closed && resp.is_empty(), "4th connection served: {resp:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/"), &[]).await.status,
        200
    );
}

#[tokio::test]
async fn drain_finishes_in_flight_requests() {
    let a = Backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&one_route(port, a.addr, "")).await;
    let slow =
        tokio::spawn(async move { get(&format!("http://127.0.0.1:{port}/slow"), &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.drain.send(true).unwrap();
    let got = slow.await.unwrap();
    assert_eq!(got.status, 200, "in-flight request completed during drain");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "still accepting after drain"
    );
}

/// Large unfinished heads share one budget: a head that needs more than is left is answered
/// 503 and closed, the heads already being read carry on, and a completed head gives its
/// share back.
#[tokio::test]
async fn large_unfinished_heads_share_one_budget() {
    let a = Backend::start("a").await;
    let port = free_port();
    let l = Limits {
        max_header_bytes: 64 * 1024,
        header_read_timeout: Duration::from_secs(10),
        head_budget: pylon_dataplane::head_budget::HeadBudget::new(40 * 1024),
        ..limits()
    };
    let budget = l.head_budget.clone();
    let _p = Proxy::start_with(&one_route(port, a.addr, ""), l).await;
    // `size` bytes of a head, unfinished.
    let partial = |size: usize| {
        format!(
            "GET /big HTTP/1.1\r\nHost: x\r\nx-big: {}",
            "a".repeat(size)
        )
    };
    let settle = || tokio::time::sleep(Duration::from_millis(200));
    let mut first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    first
        .write_all(partial(30 * 1024).as_bytes())
        .await
        .unwrap();
    settle().await;
    assert!(budget.used() >= 20 * 1024, "held {}", budget.used());
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = second.write_all(partial(30 * 1024).as_bytes()).await;
    let (resp, closed) = read_until_close(&mut second, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp:?}");
    assert!(closed);
    // The first head completes and is served; what it held is back in the pool.
    first
        .write_all(b"\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (resp, _) = read_until_close(&mut first, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert_eq!(budget.used(), 0);
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = partial(30 * 1024);
    req.push_str("\r\nConnection: close\r\n\r\n");
    third.write_all(req.as_bytes()).await.unwrap();
    let (resp, _) = read_until_close(&mut third, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
}
