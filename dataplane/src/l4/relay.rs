//! The relay of a TLS listener's connection to its backend, both ways, with half-close and
//! the idle timeout, counting bytes as it goes. The client's side is the TCP connection when
//! passing TLS through, the TLS stream when terminating: the same copy serves both.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::idle::LastSeen;

/// Sends `first` to the backend, then copies both ways until both directions are done (the
/// end of one way, a FIN or a close_notify, is passed on and the other way keeps flowing) or
/// nothing moved either way for `idle`.
pub async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    mut upstream: TcpStream,
    first: &[u8],
    idle: Duration,
    activity: &Activity,
) {
    if upstream.write_all(first).await.is_err() {
        return;
    }
    activity
        .from_client
        .fetch_add(first.len() as u64, Ordering::Relaxed);
    activity.touch();
    let mut metered = Metered {
        inner: client,
        activity,
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut metered, &mut upstream) => {}
        () = activity.seen.until_idle(idle) => {
            tracing::debug!("TLS listener: idle timeout");
        }
    }
}

/// Bytes each way and the time of the last one, shared by the copy and its idle watchdog.
pub struct Activity {
    from_client: AtomicU64,
    to_client: AtomicU64,
    /// When something was last read or written.
    seen: LastSeen,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            seen: LastSeen::new(),
        }
    }

    fn touch(&self) {
        self.seen.touch();
    }

    /// (from the client, to the client): as the client's side of the relay reads and writes
    /// them, so TLS records when passing through, plaintext when terminating.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.from_client.load(Ordering::Relaxed),
            self.to_client.load(Ordering::Relaxed),
        )
    }
}

/// The client side of a relay, counting what it reads (client → backend) and writes
/// (backend → client): one wrapper sees both directions.
struct Metered<'a, C> {
    inner: C,
    activity: &'a Activity,
}

impl<C: AsyncRead + Unpin> AsyncRead for Metered<'_, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.activity
                .from_client
                .fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        r
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Metered<'_, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.activity
                .to_client
                .fetch_add(n as u64, Ordering::Relaxed);
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
}
