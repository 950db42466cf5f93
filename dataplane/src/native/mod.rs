//! The native HTTP/1.1 path: a client connection's requests are parsed, routed and forwarded
//! to pooled backend connections by the client connection's own task, which reads and writes
//! both sockets itself.
//!
//! Why: with hyper on both sides, every request crosses two tasks (the client connection's and
//! the upstream connection's) joined by channels, arms a header-read timer, and re-parses and
//! re-allocates what was just parsed. That costs Pylon about a third more CPU per request than
//! nginx (bench/README.md). Here a request is one task's straight line of work: parse the head
//! in place, run the same route selection and filters as the hyper path (`proxy::select`,
//! `proxy::plan`, `proxy::respond`), write the upstream head and the bytes of the body already
//! read in one write, read the answer, write it out with its first body bytes in one write.
//! Bodies are relayed as framed (chunked stays chunked).
//!
//! What it does not serve is handed, with the bytes already read, to the hyper path for the
//! rest of the connection: anything but a plain HTTP/1.1 request (see
//! [`crate::h1::head::Parsed::Unsupported`]), gRPC, and rules that retry, mirror or use h2c or TLS
//! backends (`CompiledRule::native_h1`).

mod exchange;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::Body;
use crate::errors::ProxyError;
use crate::h1::buffers::{self, READ_CHUNK};
use crate::h1::framing::Framing;
use crate::h1::head::{self, Parsed, RequestHead};
use crate::h1::timer::{Elapsed, Timer};
use crate::head_budget::Held;
use crate::limits::Limits;
use crate::matching::RequestView;
use crate::proxy::{self, ConnInfo, Done, RuleCtx, Selected};
use crate::state::Shared;
use crate::target;

/// What the native path needs of a client connection beyond reading and writing.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Turns Nagle's algorithm off. Done before a connection's second write, not on accept: a
    /// first write is never delayed, and most connections that close after one answer never
    /// pay the system call (nginx's `tcp_nodelay` works the same way).
    fn set_nodelay(&self);
    /// Whether closing starts with a shutdown (TLS: the close_notify alert). Plain TCP just
    /// closes: the FIN follows the last write either way.
    const SHUTDOWN: bool;
}

impl ClientIo for tokio::net::TcpStream {
    fn set_nodelay(&self) {
        let _ = tokio::net::TcpStream::set_nodelay(self, true);
    }
    const SHUTDOWN: bool = false;
}

impl ClientIo for crate::lazy_tcp::LazyTcp {
    fn set_nodelay(&self) {
        let _ = crate::lazy_tcp::LazyTcp::set_nodelay(self);
    }
    const SHUTDOWN: bool = false;
}

impl ClientIo for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    /// Already done before the handshake (`server::serve_tls`), whose flights are several
    /// writes.
    fn set_nodelay(&self) {}
    const SHUTDOWN: bool = true;
}

/// A request body up to this size that the answer did not need is read and dropped to keep
/// the connection; a larger one closes it.
const MAX_DISCARD: u64 = 256 * 1024;
/// How long a closing connection reads what its client still sends (see `Conn::linger`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A client connection served by the native path.
struct Conn<I> {
    io: I,
    /// Bytes read from the client and not yet used.
    rd: BytesMut,
    /// Bytes read from the backend (one exchange at a time).
    urd: BytesMut,
    /// The next write (a head and the body bytes that came with it).
    out: Vec<u8>,
    timer: Timer,
    limits: Limits,
    /// What is left of the current request's body.
    req_body: Framing,
    /// The status whose head went out for the current request: from then on a failure can
    /// only close the connection.
    committed: Option<u16>,
    drain: watch::Receiver<bool>,
    /// Writes made to the client so far, up to 2 (Nagle is turned off before the second).
    writes: u8,
    /// What the head being read holds of the shared head budget.
    held: Held,
}

/// How a request ended.
enum Ended {
    /// Answered in full; the connection can carry the next request unless `close`.
    Answered { status: u16, close: bool },
    /// Something broke after the answer started: the connection is closed.
    Aborted { status: u16 },
}

/// Serves a plain-text or TLS (ALPN http/1.1 or none) client connection.
pub async fn serve<I: ClientIo>(
    io: I,
    info: Arc<ConnInfo>,
    shared: &Arc<Shared>,
    limits: &Limits,
    drain: watch::Receiver<bool>,
) {
    let mut c = Conn {
        io,
        rd: buffers::take(),
        // Taken on the first forwarded request: a connection may never need it.
        urd: BytesMut::new(),
        out: Vec::new(),
        timer: Timer::default(),
        limits: limits.clone(),
        req_body: Framing::Empty,
        committed: None,
        drain,
        writes: 0,
        held: Held::new(&limits.head_budget),
    };
    match requests(&mut c, &info, shared).await {
        Some(head) => fallback(c, head, info, shared).await,
        None => {
            buffers::give(c.rd);
            buffers::give(c.urd);
        }
    }
}

/// Serves the connection's requests until it ends (`None`) or the rest of it, from the head
/// returned on, is for the hyper path.
async fn requests<I: ClientIo>(
    c: &mut Conn<I>,
    info: &Arc<ConnInfo>,
    shared: &Arc<Shared>,
) -> Option<Bytes> {
    // Registered once per connection, not per wait: a watch channel's waiter list is behind
    // a lock.
    let mut draining = c.drain.clone();
    let mut drained = std::pin::pin!(async move {
        let _ = draining.wait_for(|d| *d).await;
    });
    loop {
        let mut head = match c.next_head(drained.as_mut()).await {
            Next::Head(h) => h,
            Next::Unsupported(raw) => return Some(raw),
            Next::Refused(e) => {
                c.refuse(e).await;
                return None;
            }
            Next::Closed => return None,
        };
        // gRPC needs HTTP/2; over HTTP/1.1 the hyper path gives the gRPC-shaped error.
        if proxy::is_grpc(&head.headers) {
            return Some(head.raw);
        }
        let start = StdInstant::now();
        let decided = target::decide(&head.method, Version::HTTP_11, &head.uri, &head.headers).map(
            |mut d| {
                d.apply(&mut head.uri);
                d
            },
        );
        // The decided authority is a cheap clone (shared bytes) the host borrows from while
        // the request's headers are filtered.
        let host = decided.as_ref().map(|d| d.host()).unwrap_or_default();
        let view = RequestView {
            method: &head.method,
            path: head.uri.path(),
            query: head.uri.query(),
            headers: &head.headers,
        };
        let selected = match &decided {
            Ok(_) => proxy::select(shared, info, &host, &view, false),
            Err(e) => Err(*e),
        };
        if matches!(&selected, Ok(s) if !s.rule.native_h1) {
            return Some(head.raw);
        }
        c.req_body = std::mem::replace(&mut head.body, Framing::Empty);
        c.committed = None;
        let route = selected.as_ref().ok().map(|s| s.rule.route.clone());
        let ended = match (selected, &decided) {
            (Ok(sel), Ok(d)) => c.forward(&sel, info, &host, &d.authority, &mut head).await,
            (Err(e), _) | (_, &Err(e)) => c.answer(&head, e.into_response(false)).await,
        };
        let (status, close) = match ended {
            Ended::Answered { status, close } => (status, close),
            Ended::Aborted { status } => (status, true),
        };
        let path = if shared.access_log.load(std::sync::atomic::Ordering::Relaxed) {
            head.uri.path()
        } else {
            ""
        };
        let done = Done {
            method: &head.method,
            host: &host,
            path,
            route: route.as_deref(),
            status,
            engine: crate::metrics::Engine::Native,
        };
        proxy::record(shared, info, start, &done);
        if close {
            if !c.req_body.is_done() {
                c.linger().await;
            } else if I::SHUTDOWN {
                let _ = c.io.shutdown().await;
            }
            return None;
        }
    }
}

/// Hands the connection to the hyper path, the bytes already read (from `head` on) first.
async fn fallback<I: ClientIo>(c: Conn<I>, head: Bytes, info: Arc<ConnInfo>, shared: &Arc<Shared>) {
    c.io.set_nodelay();
    let mut pre = BytesMut::with_capacity(head.len() + c.rd.len());
    pre.extend_from_slice(&head);
    pre.extend_from_slice(&c.rd);
    // hyper reads into buffers of its own from here on, maybe for a long time (WebSocket).
    drop(head);
    buffers::give(c.rd);
    buffers::give(c.urd);
    let io = TokioIo::new(crate::rewind::Rewind::new(pre.freeze(), c.io));
    // Boxed: hyper's connection state would otherwise make every native connection's task
    // several kB bigger.
    // Served here only without ALPN h2: HTTP/1.1, or h2c by prior knowledge on plain TCP.
    let versions = crate::hyper_serve::Versions::of(&info.transport, false);
    Box::pin(crate::hyper_serve::serve_http(
        io, info, shared, &c.limits, c.drain, versions,
    ))
    .await;
}

// Moved once per request; boxing the head would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    /// For the hyper path, with the head if it was split off the buffer already.
    Unsupported(Bytes),
    /// A head too large to serve: answered, then the connection closes.
    Refused(ProxyError),
    Closed,
}

impl<I: ClientIo> Conn<I> {
    /// Call before each write to the client.
    fn before_write(&mut self) {
        if self.writes < 2 {
            self.writes += 1;
            if self.writes == 2 {
                self.io.set_nodelay();
            }
        }
    }

    /// Waits for the next request head: the idle timeout applies while nothing has arrived,
    /// the header-read timeout once its first bytes have; drain ends an idle connection.
    async fn next_head(&mut self, drained: Pin<&mut impl Future<Output = ()>>) -> Next {
        let next = self.read_head(drained).await;
        self.held.release();
        next
    }

    async fn read_head(&mut self, mut drained: Pin<&mut impl Future<Output = ()>>) -> Next {
        let mut head_started = None;
        loop {
            let max = self.limits.max_header_bytes;
            match head::parse_request(&mut self.rd, max) {
                Parsed::Request(h) => return Next::Head(h),
                Parsed::Unsupported(raw) => return Next::Unsupported(raw),
                Parsed::TooLarge => return Next::Refused(head::too_large(&self.rd, max)),
                Parsed::NotHttp1 => return Next::Closed,
                Parsed::Partial => {}
            }
            if self.rd.len() >= max {
                return Next::Refused(head::too_large(&self.rd, max));
            }
            // A read that must grow the buffer past its first chunk (to about `len` + a chunk)
            // holds the growth, `len`, from the shared budget until the head is complete.
            if self.rd.len() > READ_CHUNK - READ_CHUNK / 4 && !self.held.hold(self.rd.len()) {
                return Next::Refused(ProxyError::HeadsOverBudget);
            }
            let read = if self.rd.is_empty() {
                let idle = self.limits.idle_timeout;
                let (timer, io, rd) = (&mut self.timer, &mut self.io, &mut self.rd);
                tokio::select! {
                    r = timer.run_for(idle, read_some(io, rd)) => r,
                    () = drained.as_mut() => return Next::Closed,
                }
            } else {
                let started = *head_started.get_or_insert_with(Instant::now);
                let deadline = started + self.limits.header_read_timeout;
                self.timer
                    .run(deadline, read_some(&mut self.io, &mut self.rd))
                    .await
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Closed,
            }
        }
    }

    /// Routes and forwards one request (under the rule's request timeout, which covers the
    /// whole exchange: the answer's body included).
    async fn forward(
        &mut self,
        sel: &Selected,
        info: &ConnInfo,
        host: &str,
        authority: &HeaderValue,
        head: &mut RequestHead,
    ) -> Ended {
        let ctx = RuleCtx {
            conn: info,
            host,
            authority,
            prefix: sel.prefix.as_deref(),
            listener_port: info.port,
        };
        let result = match sel.rule.request_timeout {
            Some(t) => tokio::time::timeout(t, exchange::run(self, &sel.rule, &ctx, head))
                .await
                .unwrap_or(Err(ProxyError::Timeout)),
            None => exchange::run(self, &sel.rule, &ctx, head).await,
        };
        match result {
            Ok(ended) => ended,
            Err(_) if self.committed.is_some() => Ended::Aborted {
                status: self.committed.unwrap_or(502),
            },
            Err(e) => self.answer(head, e.into_response(false)).await,
        }
    }

    /// Writes an answer made here (an error, a redirect, a CORS preflight).
    async fn answer(&mut self, head: &RequestHead, resp: Response<Body>) -> Ended {
        // A request body the answer did not need is read and dropped after the answer when it
        // is small, so the connection carries on; a larger one closes it (after a lingering
        // read, see `linger`).
        let discard = match self.req_body {
            Framing::Length(n) => n <= MAX_DISCARD,
            _ => self.req_body.is_done(),
        };
        let close = head.close || !discard || *self.drain.borrow();
        let (status, close) = self
            .encode_local(resp, close, head.method != Method::HEAD)
            .await;
        let status = status.as_u16();
        // From here on a timeout can only close the connection: a second answer would land in
        // the middle of this one.
        self.committed = Some(status);
        if self.write_client(None).await.is_err() {
            return Ended::Aborted { status };
        }
        if !close && self.discard_body().await.is_err() {
            return Ended::Aborted { status };
        }
        Ended::Answered { status, close }
    }

    /// Answers a request whose head was too large to read (414, 431) or to hold (503) and
    /// closes: the rest of the head is still coming, so the close lingers.
    async fn refuse(&mut self, e: ProxyError) {
        self.encode_local(e.into_response(false), true, true).await;
        if self.write_client(None).await.is_ok() {
            self.linger().await;
        }
    }

    /// Puts an answer made here into `self.out`: its body collected and framed by length (left
    /// out unless `with_body`), `Connection: close` if `close` or if the answer itself says so
    /// (a refused request: `ProxyError::closes`). Returns its status and whether it closes.
    async fn encode_local(
        &mut self,
        resp: Response<Body>,
        close: bool,
        with_body: bool,
    ) -> (StatusCode, bool) {
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut headers = parts.headers;
        if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        let refused = headers
            .get(header::CONNECTION)
            .is_some_and(|v| v == "close");
        let close = close || refused;
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.out.clear();
        head::write_response(&mut self.out, status, &headers);
        if with_body {
            self.out.extend_from_slice(&bytes);
        }
        (status, close)
    }

    /// Reads the rest of the current request's body and drops it.
    async fn discard_body(&mut self) -> std::io::Result<()> {
        loop {
            let (n, _) = self
                .req_body
                .take(&self.rd)
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
            self.rd.advance(n);
            if self.req_body.is_done() {
                return Ok(());
            }
            let idle = self.limits.idle_timeout;
            match self
                .timer
                .run_for(idle, read_some(&mut self.io, &mut self.rd))
                .await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Closes a connection whose client may still be sending: stop writing, then read and drop
    /// what arrives for a moment. Closing a socket with unread data makes the kernel send a
    /// reset, which can destroy the answer before the client has read it (nginx's
    /// `lingering_close`).
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let deadline = Instant::now() + LINGER;
        loop {
            self.rd.clear();
            match self
                .timer
                .run(deadline, read_some(&mut self.io, &mut self.rd))
                .await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    }

    /// Writes `out`, or the first `n` bytes of `urd` (`Some(n)`: body bytes relayed from the
    /// backend), to the client, within the idle timeout.
    async fn write_client(&mut self, urd: Option<usize>) -> std::io::Result<()> {
        self.before_write();
        let data = match urd {
            Some(n) => &self.urd[..n],
            None => &self.out[..],
        };
        write_timed(
            &mut self.io,
            &mut self.timer,
            self.limits.idle_timeout,
            data,
        )
        .await
    }

    /// Writes `data` (held apart from the connection's buffers) to the client, within the
    /// idle timeout.
    async fn write_to_client(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.before_write();
        write_timed(
            &mut self.io,
            &mut self.timer,
            self.limits.idle_timeout,
            data,
        )
        .await
    }
}

/// Writes all of `data` to `io` and flushes it, within `idle`.
async fn write_timed<I: AsyncWrite + Unpin>(
    io: &mut I,
    timer: &mut Timer,
    idle: std::time::Duration,
    data: &[u8],
) -> std::io::Result<()> {
    timer
        .run_for(idle, async {
            io.write_all(data).await?;
            io.flush().await
        })
        .await
        .unwrap_or_else(|Elapsed| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Reads what is available into `buf` (growing it when nearly full); 0 = end of stream.
async fn read_some<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    io.read_buf(buf).await
}
