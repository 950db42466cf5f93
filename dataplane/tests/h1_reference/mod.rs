//! A second HTTP/1.1 parser to hold the native codec against (issue #17): `httparse`'s
//! primitives (request and response heads, chunk-size lines, trailer sections) under a small,
//! strict RFC 9112 §6 framing decision written here, independently of `h1::framing`.
//!
//! The invariant: whatever the input, a message the native codec accepts is one this parser
//! accepts too, with the same method or status, target and body framing, and the same number
//! of body bytes. Where the two disagree, the native codec must be the one that refuses.
//! Shared by `tests/h1_differential.rs` (a table of smuggling inputs) and the `differential`
//! fuzz target (`fuzz/`), which includes this file by path.

use bytes::BytesMut;
use http::{Method, Version};
use pylon_dataplane::h1::framing::Framing;
use pylon_dataplane::h1::head::{self, Parsed};

/// Field slots for the reference parse: enough for any head the native path accepts (64).
const SLOTS: usize = 100;

/// How a message's body is delimited, as either parser decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (including an announced length of 0).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What a parser made of a message at the start of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The method (requests) or the status code (responses).
    pub first: String,
    /// The request-target as received (requests only).
    pub target: String,
    pub body: Body,
    /// Of the bytes after the head, how many belong to this message's body.
    pub consumed: usize,
    /// The body ends within the input.
    pub complete: bool,
}

/// The native codec's request path: `parse_request`, then the target checks both engines make
/// before routing (`target::decide`: Host, CONNECT, TRACE), then the body's framing over the
/// bytes that follow. `None` = not accepted (incomplete, refused or handed to hyper).
pub fn native_request(input: &[u8]) -> Option<Message> {
    let mut buf = BytesMut::from(input);
    let Parsed::Request(h) = head::parse_request(&mut buf, 64 * 1024) else {
        return None;
    };
    pylon_dataplane::target::decide(&h.method, Version::HTTP_11, &h.uri, &h.headers).ok()?;
    let target = h.uri.path_and_query().map_or("", |pq| pq.as_str()).into();
    native_body(h.method.to_string(), target, h.body, &buf)
}

/// The native codec's response path for an answer to `method`: `parse_response` (head kept as
/// received when `verbatim`), then the body's framing over the bytes that follow.
pub fn native_response(method: &Method, input: &[u8], verbatim: bool) -> Option<Message> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    let h = head::parse_response(&mut buf, method, verbatim.then_some(&mut out)).ok()??;
    native_body(h.status.as_str().into(), String::new(), h.body, &buf)
}

fn native_body(
    first: String,
    target: String,
    mut framing: Framing,
    rest: &[u8],
) -> Option<Message> {
    let body = match &framing {
        Framing::Empty | Framing::Length(0) => Body::None,
        Framing::Length(n) => Body::Length(*n),
        Framing::Chunked(_) => Body::Chunked,
        Framing::UntilClose => Body::UntilClose,
    };
    let (consumed, complete) = framing.take(rest).ok()?;
    Some(Message {
        first,
        target,
        body,
        consumed,
        complete,
    })
}

/// The reference's request: `None` = refused or incomplete.
pub fn reference_request(input: &[u8]) -> Option<Message> {
    let mut fields = [httparse::EMPTY_HEADER; SLOTS];
    let mut req = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(len) = req.parse(input).ok()? else {
        return None;
    };
    let (method, target, version) = (req.method?, req.path?, req.version?);
    let fields = req.headers;
    // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request. An absolute-form target names
    // its own authority; only the origin form (`/...`) and OPTIONS' `*` are served here.
    if version == 1 && named(fields, "host").count() != 1 {
        return None;
    }
    if !(target.starts_with('/') || method == "OPTIONS" && target == "*") {
        return None;
    }
    // RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ]; no fragment.
    if target.contains('#') {
        return None;
    }
    // CONNECT opens a tunnel and TRACE reflects the request: neither is a message with a body
    // to frame here.
    if method == "CONNECT" || method == "TRACE" {
        return None;
    }
    // RFC 9112 §6.3: Transfer-Encoding first. A request may only be chunked (its final and
    // only chunked coding), never with a Content-Length beside it (§6.1: smuggling), and not
    // in HTTP/1.0, which has no transfer codings.
    let body = if named(fields, "transfer-encoding").next().is_some() {
        let codings = list(named(fields, "transfer-encoding"));
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        let last = codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        if version == 0 || !last || chunked != 1 || named(fields, "content-length").next().is_some()
        {
            return None;
        }
        Body::Chunked
    } else {
        match content_length(fields)? {
            Some(0) | None => Body::None,
            Some(n) => Body::Length(n),
        }
    };
    reference_body(method.into(), target.into(), body, &input[len..])
}

/// The reference's answer to a `method` request: `None` = refused or incomplete.
pub fn reference_response(method: &Method, input: &[u8]) -> Option<Message> {
    let mut fields = [httparse::EMPTY_HEADER; SLOTS];
    let mut resp = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(len) = resp.parse(input).ok()? else {
        return None;
    };
    let (code, version) = (resp.code?, resp.version?);
    if !(100..=999).contains(&code) {
        return None;
    }
    let fields = resp.headers;
    let te = named(fields, "transfer-encoding").next().is_some();
    // §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
    if te && version == 0 {
        return None;
    }
    // §6.3, in its order: no body after HEAD, 1xx, 204, 304; then Transfer-Encoding, which
    // overrides Content-Length (Pylon drops the latter); then Content-Length; else the body
    // runs to the close.
    let body = if *method == Method::HEAD || code < 200 || code == 204 || code == 304 {
        Body::None
    } else if te {
        let codings = list(named(fields, "transfer-encoding"));
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        // A field that lists no coding says nothing a recipient could agree on; chunked
        // applied twice is no framing (§7).
        if codings.is_empty() || chunked > 1 {
            return None;
        }
        if codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
        {
            Body::Chunked
        } else {
            Body::UntilClose
        }
    } else {
        match content_length(fields)? {
            Some(0) => Body::None,
            Some(n) => Body::Length(n),
            None => Body::UntilClose,
        }
    };
    reference_body(code.to_string(), String::new(), body, &input[len..])
}

fn reference_body(first: String, target: String, body: Body, rest: &[u8]) -> Option<Message> {
    let (consumed, complete) = match body {
        Body::None => (0, true),
        Body::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            (n.min(rest.len()), rest.len() >= n)
        }
        Body::Chunked => match chunked_end(rest)? {
            Some(n) => (n, true),
            None => (rest.len(), false),
        },
        Body::UntilClose => (rest.len(), false),
    };
    Some(Message {
        first,
        target,
        body,
        consumed,
        complete,
    })
}

/// Where a chunked body at the start of `data` ends (RFC 9112 §7.1): `Some(Some(n))` after `n`
/// bytes, `Some(None)` = not within `data`, `None` = malformed. Size lines are httparse's
/// (`parse_chunk_size`), the trailer section too (`parse_headers`, which also reads the final
/// empty line); chunk data ends in exactly CRLF.
fn chunked_end(data: &[u8]) -> Option<Option<usize>> {
    let mut at = 0;
    loop {
        let (line, size) = match httparse::parse_chunk_size(&data[at..]).ok()? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return Some(None),
        };
        // httparse reads an empty size as 0; the grammar has `1*HEXDIG`.
        if !data[at].is_ascii_hexdigit() {
            return None;
        }
        at += line;
        if size == 0 {
            let mut trailers = [httparse::EMPTY_HEADER; SLOTS];
            return match httparse::parse_headers(&data[at..], &mut trailers).ok()? {
                httparse::Status::Complete((n, _)) => Some(Some(at + n)),
                httparse::Status::Partial => Some(None),
            };
        }
        // A size past what `usize` holds (16 hex digits are allowed) is not within `data`.
        let Some(end) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(at))
            .filter(|&end| end <= data.len())
        else {
            return Some(None);
        };
        let tail = &data[end..];
        match tail {
            [b'\r', b'\n', ..] => at = end + 2,
            [] | [b'\r'] => return Some(None),
            _ => return None,
        }
    }
}

/// The values of the fields called `name`.
fn named<'a>(
    fields: &'a [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(move |f| f.name.eq_ignore_ascii_case(name))
        .map(|f| f.value)
}

/// The members of a comma-separated list (RFC 9110 §5.6.1: empty members are ignored).
fn list<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|m| !m.is_empty())
        .collect()
}

/// The Content-Length (RFC 9110 §8.6): `1*DIGIT`; several fields or list members only if they
/// are all the same number. `None` = refused, `Some(None)` = there is none.
fn content_length(fields: &[httparse::Header<'_>]) -> Option<Option<u64>> {
    let mut found = None;
    for member in named(fields, "content-length").flat_map(|v| v.split(|&b| b == b',')) {
        let member = member.trim_ascii();
        if member.is_empty() || !member.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(member).ok()?.parse().ok()?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    Some(found)
}

/// Checks the invariant for one input, as a request and as the answer to a GET and to a HEAD
/// (both with the head kept verbatim and rebuilt): `Err` says how the two parsers differ.
pub fn check(input: &[u8]) -> Result<(), String> {
    agree("request", native_request(input), || {
        reference_request(input)
    })?;
    for method in [Method::GET, Method::HEAD] {
        for verbatim in [false, true] {
            agree(
                &format!("answer to {method} (verbatim {verbatim})"),
                native_response(&method, input, verbatim),
                || reference_response(&method, input),
            )?;
        }
    }
    Ok(())
}

/// A message the native codec accepts is the reference's too, read the same way.
fn agree(
    what: &str,
    native: Option<Message>,
    reference: impl FnOnce() -> Option<Message>,
) -> Result<(), String> {
    let Some(native) = native else {
        return Ok(());
    };
    match reference() {
        Some(r) if r == native => Ok(()),
        r => Err(format!("{what}: native {native:?}, reference {r:?}")),
    }
}
