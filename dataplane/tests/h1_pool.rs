//! The HTTP/1.1 upstream pool: sequential requests share one connection, concurrent ones open
//! more, and a connection the backend closed is not reused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Request;
use http_body_util::BodyExt;
use pylon_dataplane::body::empty;
use pylon_dataplane::h1_pool::H1Pool;
use pylon_dataplane::tcp_pool::CONNECT_TIMEOUT;

fn req(path: &str) -> Request<pylon_dataplane::body::Body> {
    Request::builder()
        .uri(path)
        .header("host", "backend")
        .body(empty())
        .unwrap()
}

/// Waits (up to 5 s) until every open connection is ready again (its connection task runs
/// after the answer has been read) and closed ones are pruned; returns how many are held.
async fn settle(pool: &H1Pool) -> usize {
    for _ in 0..500 {
        pool.prune(std::time::Instant::now());
        let (all, ready) = pool.counts();
        if all == ready {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connections never became ready: {:?}", pool.counts());
}

#[tokio::test]
async fn reuses_connections_and_opens_more_under_concurrency() {
    let a = Backend::start("a").await;
    let pool = Arc::new(H1Pool::default());
    for _ in 0..5 {
        let resp = pool
            .send(a.addr, CONNECT_TIMEOUT, req("/seq"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        settle(&pool).await;
    }
    assert_eq!(
        pool.counts().0,
        1,
        "sequential requests share one connection"
    );

    let sends = (0..4).map(|_| {
        let pool = pool.clone();
        async move {
            let resp = pool
                .send(a.addr, CONNECT_TIMEOUT, req("/par"))
                .await
                .unwrap();
            resp.into_body().collect().await.unwrap();
        }
    });
    futures::future::join_all(sends).await;
    let after = settle(&pool).await;
    assert!((2..=4).contains(&after), "{after} connections");
    assert_eq!(a.hits(), 9);

    // Connection: close from the client side: hyper closes it after the answer, and the pool
    // neither reuses nor keeps it.
    let before = after;
    let mut r = req("/close");
    r.headers_mut()
        .insert("connection", http::HeaderValue::from_static("close"));
    let resp = pool.send(a.addr, CONNECT_TIMEOUT, r).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(settle(&pool).await, before - 1, "closed connection kept");
    let resp = pool
        .send(a.addr, CONNECT_TIMEOUT, req("/after"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
