//! A completed WebSocket upgrade: the 101 answered and the two connections spliced.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::Response;
use hyper::body::Incoming;

use crate::body::{Body, empty};
use crate::state::Shared;

/// Completes a WebSocket upgrade: answers 101 and splices the two connections.
pub(super) fn tunnel(
    shared: &Arc<Shared>,
    client: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
) -> Response<Body> {
    let upstream = hyper::upgrade::on(&mut resp);
    let shared = shared.clone();
    tokio::spawn(async move {
        let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
            return;
        };
        shared
            .metrics
            .active_connections
            .fetch_add(1, Ordering::Relaxed);
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        shared
            .metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, empty())
}
