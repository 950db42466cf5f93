//! HTTP/1.1 message heads: parsed with `httparse` into `http` types whose header values and
//! path point into the received bytes (no copy per header), and written back out.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode};

use super::framing::{self, Framing};
use crate::errors::ProxyError;
use crate::fields::{self, MAX_RESPONSE_HEAD};

/// Header fields accepted by the native path; a head with more goes to the hyper path,
/// which has its own limit and answers 431.
const MAX_HEADERS: usize = 64;

/// A request head the native path can serve.
pub struct RequestHead {
    pub method: Method,
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub body: Framing,
    /// `Connection: close`: answer, then close.
    pub close: bool,
    /// The head as received, should the hyper path have to serve the request after all.
    pub raw: Bytes,
}

/// What the bytes at the start of a connection's buffer hold.
// Moved once per request; boxing the head would allocate per request.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// Not a complete head yet.
    Partial,
    Request(RequestHead),
    /// Valid or not, something only the hyper path handles: HTTP/1.0, h2c's preface, absolute
    /// URIs, CONNECT, upgrades, `Expect`, a transfer-coded request body, malformed heads
    /// (hyper answers them 400). Holds the head if it was already split off the buffer.
    Unsupported(Bytes),
    /// A complete head longer than the limit (see [`too_large`]).
    TooLarge,
    /// A first line that names no HTTP/1.x version and is not the HTTP/2 preface: the peer
    /// does not speak HTTP/1.1 (an HTTP/2 client with a broken preface, h2spec 3.5/2), so an
    /// HTTP/1.1 400 would mean nothing to it. The connection is closed (RFC 9112 §2.2: the 400
    /// is a SHOULD).
    NotHttp1,
}

/// The answer to a request head over `max` bytes, of which `buf` holds the start: 414 if its
/// request line alone is too long (RFC 9112 §3), else 431 (RFC 6585 §5).
pub fn too_large(buf: &[u8], max: usize) -> ProxyError {
    if buf[..buf.len().min(max)].contains(&b'\n') {
        ProxyError::HeaderTooLarge
    } else {
        ProxyError::UriTooLong
    }
}

/// Where a name and a value lie in the head.
type Field = (usize, usize, usize, usize);

/// httparse's field slots, uninitialised: a head has a few fields, and writing all
/// `MAX_HEADERS` empty ones first was a 2 kB write per head.
type Slots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

const fn slots<'b>() -> Slots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

thread_local! {
    /// The fields' offsets of the head being turned into a `HeaderMap` (see [`record_fields`]),
    /// kept per thread: no allocation, and no zeroed array of `MAX_HEADERS` offsets, per head.
    static FIELDS: RefCell<Vec<Field>> = const { RefCell::new(Vec::new()) };
}

/// Parses the request head at the start of `buf`; a complete head is split off `buf`.
pub fn parse_request(buf: &mut BytesMut, max: usize) -> Parsed {
    let mut slots = slots();
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) if n <= max => n,
        Ok(httparse::Status::Complete(_)) => return Parsed::TooLarge,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::Version) if !buf.starts_with(b"PRI * HTTP/2.0\r\n") => {
            return Parsed::NotHttp1;
        }
        Err(_) => return Parsed::Unsupported(Bytes::new()),
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Unsupported(Bytes::new());
    };
    if !path.starts_with('/') {
        return Parsed::Unsupported(Bytes::new());
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Unsupported(Bytes::new());
    };
    if method == Method::CONNECT {
        return Parsed::Unsupported(Bytes::new());
    }
    let base = buf.as_ptr() as usize;
    let path = offsets(base, path.as_bytes());
    record_fields(buf, req.headers);
    let (raw, headers) = split_head(buf, len);
    let Ok(headers) = headers else {
        return Parsed::Unsupported(raw);
    };
    // `http` drops a fragment (`#...`), which no request-target has (RFC 9112 §3.2): the
    // native path would route and forward another target than it received.
    let pq = match PathAndQuery::from_maybe_shared(raw.slice(path.0..path.1)) {
        Ok(pq) if pq.as_str().len() == path.1 - path.0 => pq,
        _ => return Parsed::Unsupported(raw),
    };
    if [header::UPGRADE, header::EXPECT, header::TRANSFER_ENCODING]
        .iter()
        .any(|h| headers.contains_key(h))
    {
        return Parsed::Unsupported(raw);
    }
    let body = match framing::content_length(
        headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .map(HeaderValue::as_bytes),
    ) {
        Ok(Some(0) | None) => Framing::Empty,
        Ok(Some(n)) => Framing::Length(n),
        Err(_) => return Parsed::Unsupported(raw),
    };
    let close = fields::connection_lists(&headers, b"close");
    Parsed::Request(RequestHead {
        method,
        uri: http::Uri::from(pq),
        headers,
        body,
        close,
        raw,
    })
}

/// A response head from a backend.
pub struct ResponseHead {
    pub status: StatusCode,
    /// Where its body ends.
    pub body: Framing,
    /// The backend will close the connection after this response (`Connection: close`, or an
    /// HTTP/1.0 answer).
    pub close: bool,
    /// Its header fields, or `None` if they were written out as received (see
    /// [`parse_response`]).
    pub headers: Option<HeaderMap>,
}

/// Why a backend's response head is unusable (502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResponse;

/// Parses the head at the start of `buf` of a response to a `method` request; a complete head
/// is split off `buf`.
///
/// With `verbatim` (no filter rewrites the answer's headers), a final (non-1xx) answer's head
/// replaces what `verbatim` holds, as received but without its last empty line: the status
/// line and every field but the hop-by-hop ones (RFC 9110 §7.6.1) and the framing fields our
/// framing replaces (a length-delimited body's Content-Length follows from
/// [`end_verbatim_response`]). No `HeaderMap` is built for it, and no head written from one:
/// that took about 0.3 µs per request (bench/README.md).
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    verbatim: Option<&mut Vec<u8>>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut slots = slots();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => return Ok(None),
        _ => return Err(BadResponse),
    };
    let (Some(code), Some(version)) = (resp.code, resp.version) else {
        return Err(BadResponse);
    };
    let status = StatusCode::from_u16(code).map_err(|_| BadResponse)?;
    let fields = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    // An HTTP/1.0 answer with Transfer-Encoding is faulty framing (RFC 9112 §6.1): whether it
    // is chunked or runs to the close, two parsers would disagree.
    if version == 0
        && fields
            .clone()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
    {
        return Err(BadResponse);
    }
    let body = framing::response(method, status, fields.clone()).map_err(|_| BadResponse)?;
    let connection = || {
        fields
            .clone()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .map(|(_, v)| v)
    };
    let listed =
        |token: &[u8]| fields::list_tokens(connection()).any(|t| t.eq_ignore_ascii_case(token));
    let close = version == 0 && !listed(b"keep-alive") || listed(b"close");
    let headers = match verbatim {
        Some(out) if !status.is_informational() => {
            out.clear();
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(status.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
            out.extend_from_slice(b"\r\n");
            // Usually `Connection: keep-alive` or `close`, which name no field.
            let names_fields = fields::list_tokens(connection()).any(fields::names_removable_field);
            let coded = fields
                .clone()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"));
            let bodiless = matches!(body, Framing::Empty);
            for (name, value) in fields.clone() {
                let is = |h: &HeaderName| name.eq_ignore_ascii_case(h.as_str().as_bytes());
                // As `proxy::respond` has it: hop-by-hop fields go; Transfer-Encoding stays but
                // on an answer without a body, and takes Content-Length's place. A body
                // delimited by its length gets our Content-Length (`end_verbatim_response`);
                // an answer without one keeps the backend's (a HEAD's tells the GET's).
                let drop = crate::hop_by_hop::HOP_BY_HOP_RESPONSE.iter().any(is)
                    || is(&header::CONTENT_LENGTH) && (coded || !bodiless)
                    || is(&header::TRANSFER_ENCODING) && bodiless
                    || names_fields
                        && fields::list_tokens(connection()).any(|t| {
                            fields::names_removable_field(t) && name.eq_ignore_ascii_case(t)
                        });
                if !drop {
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
            }
            buf.advance(len);
            None
        }
        _ => {
            record_fields(buf, resp.headers);
            Some(split_head(buf, len).1.map_err(|_| BadResponse)?)
        }
    };
    Ok(Some(ResponseHead {
        status,
        body,
        close,
        headers,
    }))
}

/// Ends a head written by [`parse_response`] with `verbatim`: the Content-Length of a body
/// delimited by it, `Connection: close` if this is the connection's last answer, and the
/// empty line.
pub fn end_verbatim_response(out: &mut Vec<u8>, body: &Framing, close: bool) {
    if let Framing::Length(n) = body {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The byte range `s` (a slice of the buffer starting at address `base`) occupies.
fn offsets(base: usize, s: &[u8]) -> (usize, usize) {
    let start = s.as_ptr() as usize - base;
    (start, start + s.len())
}

/// Records where each of `fields` (parsed from `buf`) lies in `buf`, so that [`split_head`]
/// can split the head off and freeze it before the values are sliced out of it (the parsed
/// fields borrow `buf`, which splitting changes).
fn record_fields(buf: &BytesMut, fields: &[httparse::Header<'_>]) {
    let base = buf.as_ptr() as usize;
    FIELDS.with_borrow_mut(|out| {
        out.clear();
        out.extend(fields.iter().map(|h| {
            let (ns, ne) = offsets(base, h.name.as_bytes());
            let (vs, ve) = offsets(base, h.value);
            (ns, ne, vs, ve)
        }));
    });
}

/// Splits the `len` bytes of a parsed head off `buf` and builds its `HeaderMap` from the fields
/// [`record_fields`] recorded for it; the values point into the head's bytes.
fn split_head(buf: &mut BytesMut, len: usize) -> (Bytes, Result<HeaderMap, http::Error>) {
    let raw = buf.split_to(len).freeze();
    let map = FIELDS.with_borrow(|fields| header_map(&raw, fields));
    (raw, map)
}

/// Room for the fields a forwarded request gains (`proxy::upstream_headers`: X-Forwarded-For
/// and X-Forwarded-Proto), so the map is not grown (reallocated) on the way out.
const ADDED_FIELDS: usize = 2;

fn header_map(raw: &Bytes, fields: &[Field]) -> Result<HeaderMap, http::Error> {
    let mut map = HeaderMap::with_capacity(fields.len() + ADDED_FIELDS);
    for &(ns, ne, vs, ve) in fields {
        let name = HeaderName::from_bytes(&raw[ns..ne])?;
        let value = HeaderValue::from_maybe_shared(raw.slice(vs..ve))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Writes a request head (origin-form, HTTP/1.1).
pub fn write_request(out: &mut Vec<u8>, method: &Method, pq: &PathAndQuery, headers: &HeaderMap) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(pq.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, headers);
}

/// Writes a response head; the caller has put the framing headers in `headers`.
pub fn write_response(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers);
}

fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    fn parse(s: &str) -> Parsed {
        parse_request(&mut BytesMut::from(s), MAX)
    }

    #[test]
    fn a_plain_request_head_is_parsed_and_split_off() {
        let mut buf = BytesMut::from(
            "POST /a/b?x=1 HTTP/1.1\r\nHost: Example.com\r\nX-Two: 1\r\nx-two: 2\r\n\
             Content-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabcGET",
        );
        let Parsed::Request(h) = parse_request(&mut buf, MAX) else {
            panic!("not parsed")
        };
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/a/b");
        assert_eq!(h.uri.query(), Some("x=1"));
        assert_eq!(h.headers["host"], "Example.com");
        assert_eq!(h.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(h.body, Framing::Length(3));
        assert!(h.close);
        assert_eq!(
            &buf[..],
            b"abcGET",
            "the body and what follows stay in the buffer"
        );
        assert!(h.raw.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn what_the_native_path_leaves_to_hyper() {
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
        for s in [
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost x\r\n\r\n",
            // Found by the differential test: the fragment was dropped, the rest served.
            "GET /p#frag HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /p?q#frag HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(s);
            let Parsed::Unsupported(raw) = parse_request(&mut buf, MAX) else {
                panic!("{s:?} parsed")
            };
            let mut whole = raw.to_vec();
            whole.extend_from_slice(&buf);
            assert_eq!(whole, s.as_bytes(), "hyper gets the bytes of {s:?} intact");
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(parse(&many), Parsed::Unsupported(_)));
        // No HTTP/1.x version and not the HTTP/2 preface: not an HTTP/1.1 peer.
        for s in ["INVALID CONNECTION PREFACE\r\n\r\n", "GET / HTTP/3\r\n\r\n"] {
            assert!(matches!(parse(s), Parsed::NotHttp1), "{s:?}");
        }
    }

    #[test]
    fn response_heads_say_whether_the_backend_keeps_the_connection() {
        let cases = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", true),
            ("HTTP/1.0 200 OK\r\n\r\n", true),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false),
        ];
        for (s, close) in cases {
            let mut buf = BytesMut::from(s);
            let h = parse_response(&mut buf, &Method::GET, None)
                .unwrap()
                .unwrap();
            assert_eq!(h.status, StatusCode::OK);
            assert_eq!(h.close, close, "{s:?}");
            assert!(buf.is_empty());
        }
        let mut partial = BytesMut::from("HTTP/1.1 200 OK\r\n");
        assert!(matches!(
            parse_response(&mut partial, &Method::GET, None),
            Ok(None)
        ));
        for bad in [
            "HTTP/1.1 2000 OK\r\n\r\n".to_string(),
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
            // Over the limit, complete in one read or not.
            format!(
                "HTTP/1.1 200 OK\r\nx: {}\r\n\r\n",
                "a".repeat(MAX_RESPONSE_HEAD)
            ),
            format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_RESPONSE_HEAD)),
        ] {
            let mut buf = BytesMut::from(bad.as_str());
            assert_eq!(
                parse_response(&mut buf, &Method::GET, None).err(),
                Some(BadResponse),
                "{}",
                &bad[..40]
            );
        }
    }

    #[test]
    fn verbatim_answer_heads_lose_only_hop_by_hop_fields_and_get_our_framing() {
        let verbatim = |s: &str, method: Method, close: bool| {
            let mut buf = BytesMut::from(s);
            let mut out = b"the request".to_vec();
            let h = parse_response(&mut buf, &method, Some(&mut out))
                .unwrap()
                .unwrap();
            assert!(h.headers.is_none());
            end_verbatim_response(&mut out, &h.body, close);
            (String::from_utf8(out).unwrap(), h.body, buf)
        };
        let (head, body, rest) = verbatim(
            "HTTP/1.1 200 Fine\r\nServer: b\r\nConnection: keep-alive, X-Private\r\n\
             Keep-Alive: timeout=5\r\nx-private: 1\r\nProxy-Connection: x\r\nUpgrade: y\r\n\
             Content-Length: 2, 2\r\nX-Kept: yes\r\n\r\nok",
            Method::GET,
            false,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 Fine\r\nServer: b\r\nX-Kept: yes\r\ncontent-length: 2\r\n\r\n"
        );
        assert_eq!(body, Framing::Length(2));
        assert_eq!(&rest[..], b"ok");
        // Transfer codings stay as received; a Content-Length beside them goes.
        let (head, body, _) = verbatim(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            Method::GET,
            true,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nconnection: close\r\n\r\n"
        );
        assert!(matches!(body, Framing::Chunked(_)));
        // A HEAD answer's Content-Length describes the GET's body: kept.
        let (head, body, _) = verbatim(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
            Method::HEAD,
            false,
        );
        assert_eq!(head, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(body, Framing::Empty);
        // An interim answer is not written: the request stays for a resend.
        let mut buf = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\n");
        let mut out = b"the request".to_vec();
        parse_response(&mut buf, &Method::GET, Some(&mut out)).unwrap();
        assert_eq!(out, b"the request");
    }

    #[test]
    fn heads_are_written_back_in_wire_form() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("x"));
        h.append("x-a", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        write_request(
            &mut out,
            &Method::GET,
            &PathAndQuery::from_static("/p?q"),
            &h,
        );
        assert_eq!(out, b"GET /p?q HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n\r\n");
        out.clear();
        write_response(&mut out, StatusCode::NOT_FOUND, &HeaderMap::new());
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n\r\n");
    }
}
