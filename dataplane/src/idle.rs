//! Idle-connection tracking: an IO wrapper that stamps every read and write, so the server can
//! close keep-alive connections that carried no bytes and no request for the idle timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// When something last moved, as milliseconds after a start: one atomic store per stamp, so
/// the IO paths of HTTP connections, L4 relays and UDP sessions can all afford it.
#[derive(Debug)]
pub struct LastSeen {
    start: Instant,
    /// Milliseconds after `start` of the last [`touch`](Self::touch).
    last_ms: AtomicU64,
}

impl LastSeen {
    pub fn new() -> LastSeen {
        LastSeen {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When it started (what a log line's duration is measured from).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// How long nothing has moved, in whole milliseconds (as stamped).
    pub fn idle(&self) -> Duration {
        let now_ms = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Returns once nothing moved for `idle`.
    pub async fn until_idle(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

impl Default for LastSeen {
    fn default() -> Self {
        LastSeen::new()
    }
}

/// Shared between a connection's IO, its service (in-flight requests) and its watchdog.
#[derive(Debug)]
pub struct Activity {
    seen: LastSeen,
    pub in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            seen: LastSeen::new(),
            in_flight: AtomicUsize::new(0),
        })
    }

    pub fn touch(&self) {
        self.seen.touch();
    }

    /// True if no request is running and nothing moved for `timeout`.
    pub fn idle_for(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.seen.idle() >= timeout
    }
}

/// Decrements `in_flight` when dropped (the request's handler finished or was cancelled).
pub struct InFlight(pub Arc<Activity>);

impl InFlight {
    pub fn start(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.touch();
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// IO that records activity.
pub struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Tracked<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        activity.touch();
        Tracked { inner, activity }
    }
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if r.is_ready() {
            this.activity.touch();
        }
        r
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if r.is_ready() {
            this.activity.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            this.activity.touch();
        }
        r
    }
}
