//! A plain client connection that joins the event loop only once it has to wait.
//!
//! Registering a socket with epoll and removing it again costs two system calls (~0.6 µs in
//! the kernel, measured here) and tokio's bookkeeping for the registration. A client that
//! connects, sends its request at once and is answered with `Connection: close` never needs
//! either: its request is already in the socket when the connection is first read (the
//! worker accepts a batch of connections before their tasks run), and the answer fits the
//! socket buffer. So a [`LazyTcp`] reads and writes the socket directly (it is non-blocking
//! from `accept4`), and registers it with tokio's reactor the first time a read or write
//! would block; from then on it is an ordinary `tokio::net::TcpStream`. A keep-alive
//! connection pays one extra `recv` (the one that finds nothing and registers); a connection
//! served once and closed pays no epoll system call at all.

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client TCP connection, registered with the reactor on its first wait.
#[derive(Debug)]
pub struct LazyTcp(State);

#[derive(Debug)]
enum State {
    /// Not known to the reactor; every read and write is tried directly.
    Direct(std::net::TcpStream),
    /// Registered: tokio waits for readiness.
    Registered(TcpStream),
    /// Registration failed (the reactor is gone or out of memory): the socket was closed, and
    /// every further read or write fails.
    Closed,
}

impl LazyTcp {
    /// Takes an accepted, non-blocking socket (`mio`'s `accept` makes it so).
    pub fn new(stream: mio::net::TcpStream) -> Self {
        LazyTcp(State::Direct(stream.into()))
    }

    /// Whether the socket has been registered with the reactor.
    pub fn is_registered(&self) -> bool {
        matches!(self.0, State::Registered(_))
    }

    /// Registers the socket (on a read or write that would block) and returns the tokio
    /// stream to wait with.
    fn register(&mut self) -> io::Result<&mut TcpStream> {
        if let State::Direct(_) = self.0 {
            let State::Direct(std) = std::mem::replace(&mut self.0, State::Closed) else {
                unreachable!("checked just above");
            };
            self.0 = State::Registered(TcpStream::from_std(std)?);
        }
        match &mut self.0 {
            State::Registered(t) => Ok(t),
            _ => Err(closed()),
        }
    }

    /// Turns Nagle's algorithm off.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match &self.0 {
            State::Direct(s) => s.set_nodelay(true),
            State::Registered(t) => t.set_nodelay(true),
            State::Closed => Err(closed()),
        }
    }

    /// Tries `direct` on the unregistered socket; once the socket is registered, or when
    /// `direct` would block (which registers it), polls the tokio stream with `waiting`.
    fn poll_io<A: ?Sized, T>(
        &mut self,
        arg: &mut A,
        mut direct: impl FnMut(&std::net::TcpStream, &mut A) -> io::Result<T>,
        waiting: impl FnOnce(Pin<&mut TcpStream>, &mut A) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let State::Direct(s) = &self.0 {
            loop {
                match direct(s, arg) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    done => return Poll::Ready(done),
                }
            }
        }
        match self.register() {
            Ok(t) => waiting(Pin::new(t), arg),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection could not join the event loop",
    )
}

/// `recv` into the unfilled part of `buf`, which may be uninitialised (the read buffers are
/// `BytesMut` spare capacity: initialising 8 kB per read would cost more than the read).
#[allow(unsafe_code)]
fn recv_into(s: &std::net::TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `recv` writes at most `dst.len()` bytes into `dst` and reads none of it; the
    // `n` bytes it reports written are then initialised, which is what `assume_init` and
    // `advance` are told.
    unsafe {
        let dst = buf.unfilled_mut();
        let n = libc::recv(s.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len(), 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

impl AsyncRead for LazyTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_io(
            buf,
            |s, buf| recv_into(s, buf).map(|_| ()),
            |t, buf| t.poll_read(cx, buf),
        )
    }
}

impl AsyncWrite for LazyTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(
            &mut data,
            |mut s, data| s.write(data),
            |t, data| t.poll_write(cx, data),
        )
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(
            &mut bufs,
            |mut s, bufs| s.write_vectored(bufs),
            |t, bufs| t.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            // A socket write is not buffered in user space.
            State::Direct(_) | State::Closed => Poll::Ready(Ok(())),
            State::Registered(t) => Pin::new(t).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            State::Direct(s) => Poll::Ready(s.shutdown(Shutdown::Write)),
            State::Registered(t) => {
                ready!(Pin::new(t).poll_shutdown(cx))?;
                Poll::Ready(Ok(()))
            }
            State::Closed => Poll::Ready(Err(closed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the client side (a tokio stream) and the accepted side as a
    /// `LazyTcp`, accepted the way the listener does (`mio`, non-blocking).
    async fn pair() -> (TcpStream, LazyTcp) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = mio::net::TcpListener::from_std(std_listener);
        let client = TcpStream::connect(addr).await.unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        (client, LazyTcp::new(accepted))
    }

    /// Waits until `n` bytes sent by the peer are readable without blocking.
    fn wait_readable(s: &LazyTcp, n: usize) {
        let State::Direct(std) = &s.0 else {
            panic!("registered already")
        };
        let mut probe = vec![0; n];
        for _ in 0..1000 {
            std.set_nonblocking(true).unwrap();
            if matches!(std.peek(&mut probe), Ok(got) if got >= n) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the peer's bytes never arrived");
    }

    #[tokio::test]
    async fn a_request_already_there_and_a_short_answer_never_register() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        wait_readable(&server, 18);
        let mut buf = bytes::BytesMut::with_capacity(64);
        assert_eq!(server.read_buf(&mut buf).await.unwrap(), 18);
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n");
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        server.flush().await.unwrap();
        server.shutdown().await.unwrap();
        assert!(!server.is_registered(), "no read or write had to wait");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn a_read_with_nothing_there_registers_and_wakes_when_bytes_arrive() {
        let (mut client, mut server) = pair().await;
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = server.read(&mut buf).await.unwrap();
            (server, buf[..n].to_vec())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "nothing was sent yet");
        client.write_all(b"late").await.unwrap();
        let (server, got) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the read was woken")
            .unwrap();
        assert_eq!(got, b"late");
        assert!(server.is_registered());
    }

    #[tokio::test]
    async fn a_write_larger_than_the_socket_buffer_registers_and_completes() {
        let (mut client, mut server) = pair().await;
        // Far more than loopback's socket buffers hold while the client is not reading.
        let body = vec![7u8; 16 << 20];
        let writer = tokio::spawn(async move {
            server.write_all(&body).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 16 << 20);
        assert!(got.iter().all(|b| *b == 7));
        assert!(writer.await.unwrap().is_registered());
    }

    #[tokio::test]
    async fn end_of_stream_reads_as_zero_bytes() {
        let (client, mut server) = pair().await;
        drop(client);
        let mut buf = [0u8; 8];
        // The FIN may take a moment on loopback; a read that finds nothing yet registers and
        // then sees it.
        let n = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }
}
