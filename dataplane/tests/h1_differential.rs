//! Differential tests of the native HTTP/1.1 codec (issue #17): a smuggling corpus through the
//! codec and through a second parser (`h1_reference`: httparse under a strict RFC 9112 §6
//! framing decision). Each row says what the native codec must make of its input, and every
//! input is checked against the reference: accepted by the native codec ⇒ accepted by the
//! reference with the same method or status, target, framing and body bytes.
//!
//! The same rows seed the fuzz targets: `UPDATE_FUZZ_CORPUS=1 cargo test -p pylon-dataplane
//! --test h1_differential` writes them into `fuzz/corpus/`.

mod h1_reference;

use h1_reference::{Body, check, native_request, native_response};
use http::Method;

/// What the native codec must make of a row's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Accepted with this framing (and agreeing with the reference).
    Accept(Body),
    /// Not accepted: refused, or handed to the hyper engine.
    Refuse,
}

use Want::{Accept, Refuse};

/// A row: its name, the bytes, what the native codec must make of them.
fn req(name: &'static str, bytes: impl Into<Vec<u8>>, want: Want) -> (&'static str, Vec<u8>, Want) {
    (name, bytes.into(), want)
}

fn requests() -> Vec<(&'static str, Vec<u8>, Want)> {
    let h = "Host: a.example.com\r\n";
    let post = |fields: &str, body: &str| format!("POST /p HTTP/1.1\r\n{h}{fields}\r\n{body}");
    let long = "a".repeat(70_000);
    vec![
        req(
            "plain GET",
            format!("GET /p?q=1 HTTP/1.1\r\n{h}\r\n"),
            Accept(Body::None),
        ),
        req(
            "length",
            post("Content-Length: 5\r\n", "hello"),
            Accept(Body::Length(5)),
        ),
        req(
            "length, body short",
            post("Content-Length: 5\r\n", "hel"),
            Accept(Body::Length(5)),
        ),
        req(
            "length, next request follows",
            post("Content-Length: 2\r\n", "okGET / HTTP/1.1\r\n\r\n"),
            Accept(Body::Length(2)),
        ),
        req(
            "length 0",
            post("Content-Length: 0\r\n", ""),
            Accept(Body::None),
        ),
        req(
            "length with leading zeros",
            post("Content-Length: 005\r\n", "hello"),
            Accept(Body::Length(5)),
        ),
        // CL.TE and TE.CL: both fields; the native codec hands every coded body to hyper.
        req(
            "CL.TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\nG",
            ),
            Refuse,
        ),
        req(
            "TE.CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                "8\r\nSMUGGLED\r\n0\r\n\r\n",
            ),
            Refuse,
        ),
        req(
            "chunked",
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        // TE.TE: obfuscated codings, each a Transfer-Encoding field the native codec refuses.
        req(
            "TE xchunked",
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE chunked, trailing space",
            post("Transfer-Encoding: chunked \r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE tab",
            post("Transfer-Encoding:\tchunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
                "0\r\n\r\n",
            ),
            Refuse,
        ),
        req(
            "TE chunked, chunked",
            post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE empty",
            post("Transfer-Encoding: \r\nContent-Length: 5\r\n", "hello"),
            Refuse,
        ),
        req(
            "TE upper case",
            post("TRANSFER-ENCODING: CHUNKED\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE space before colon",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE obs-fold",
            post("X: y\r\n Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        // Content-Length that is not one decimal number.
        req("CL +5", post("Content-Length: +5\r\n", "hello"), Refuse),
        req("CL -1", post("Content-Length: -1\r\n", ""), Refuse),
        req("CL 0x5", post("Content-Length: 0x5\r\n", "hello"), Refuse),
        req(
            "CL 5,5",
            post("Content-Length: 5,5\r\n", "hello"),
            Accept(Body::Length(5)),
        ),
        req(
            "CL 5, 6",
            post("Content-Length: 5, 6\r\n", "hello!"),
            Refuse,
        ),
        req(
            "CL twice, same",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            Accept(Body::Length(5)),
        ),
        req(
            "CL twice, differing",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            Refuse,
        ),
        req("CL empty", post("Content-Length: \r\n", ""), Refuse),
        req(
            "CL empty member",
            post("Content-Length: 5,\r\n", "hello"),
            Refuse,
        ),
        req("CL 5 5", post("Content-Length: 5 5\r\n", "hello"), Refuse),
        req(
            "CL overflow",
            post("Content-Length: 99999999999999999999\r\n", ""),
            Refuse,
        ),
        req("CL 1e3", post("Content-Length: 1e3\r\n", ""), Refuse),
        req(
            "CL space before colon",
            post("Content-Length : 5\r\n", "hello"),
            Refuse,
        ),
        req(
            "CL obs-fold",
            post("Content-Length: 5\r\n 6\r\n", "hello"),
            Refuse,
        ),
        req("CL NUL", post("Content-Length: 5\0\r\n", "hello"), Refuse),
        // Line ends and field values.
        req(
            "bare CR in a value",
            format!("GET / HTTP/1.1\r\n{h}X: a\rb\r\n\r\n"),
            Refuse,
        ),
        req(
            "NUL in a value",
            format!("GET / HTTP/1.1\r\n{h}X: a\0b\r\n\r\n"),
            Refuse,
        ),
        req(
            "obs-fold",
            format!("GET / HTTP/1.1\r\n{h}X: a\r\n b\r\n\r\n"),
            Refuse,
        ),
        req(
            "space before colon",
            format!("GET / HTTP/1.1\r\n{h}X : a\r\n\r\n"),
            Refuse,
        ),
        req(
            "no colon",
            format!("GET / HTTP/1.1\r\n{h}X a\r\n\r\n"),
            Refuse,
        ),
        req(
            "bare CR ending the request line",
            format!("GET / HTTP/1.1\r{h}\r\n"),
            Refuse,
        ),
        // RFC 9112 §2.2 lets a recipient take a bare LF as a line end; httparse (and so hyper)
        // does, and both parsers read the same lines.
        req(
            "bare LF",
            "GET / HTTP/1.1\nHost: a.example.com\n\n",
            Accept(Body::None),
        ),
        req(
            "bare LF, length",
            "POST / HTTP/1.1\nHost: a\nContent-Length: 2\n\nok",
            Accept(Body::Length(2)),
        ),
        // Targets and Host.
        req(
            "absolute-form",
            format!("GET http://b.example.com/ HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        req("no Host", "GET / HTTP/1.1\r\n\r\n", Refuse),
        req("two Hosts", format!("GET / HTTP/1.1\r\n{h}{h}\r\n"), Refuse),
        req(
            "Host with userinfo",
            "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
            Refuse,
        ),
        req(
            "fragment",
            format!("GET /p#frag HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        // The asterisk form is left to the hyper engine.
        req(
            "asterisk, OPTIONS",
            format!("OPTIONS * HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        req(
            "asterisk, GET",
            format!("GET * HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        // Upgrades and methods that are not a plain request here.
        req(
            "h2c upgrade",
            format!(
                "GET / HTTP/1.1\r\n{h}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            ),
            Refuse,
        ),
        req("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Refuse),
        req(
            "CONNECT",
            format!("CONNECT a.example.com:443 HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        req("TRACE", format!("TRACE / HTTP/1.1\r\n{h}\r\n"), Refuse),
        req("HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", Refuse),
        req(
            "HTTP/1.0 with chunked",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refuse,
        ),
        req(
            "Expect",
            post("Expect: 100-continue\r\nContent-Length: 5\r\n", ""),
            Refuse,
        ),
        req(
            "lower-case method",
            format!("get / HTTP/1.1\r\n{h}\r\n"),
            Accept(Body::None),
        ),
        req(
            "over-long request line",
            format!("GET /{long} HTTP/1.1\r\n{h}\r\n"),
            Refuse,
        ),
        req(
            "over-long field",
            format!("GET / HTTP/1.1\r\n{h}X: {long}\r\n\r\n"),
            Refuse,
        ),
        req("incomplete head", format!("GET / HTTP/1.1\r\n{h}"), Refuse),
    ]
}

fn responses() -> Vec<(&'static str, Vec<u8>, Want)> {
    let ok = |fields: &str, body: &str| format!("HTTP/1.1 200 OK\r\n{fields}\r\n{body}");
    let chunked = |body: &str| ok("Transfer-Encoding: chunked\r\n", body);
    vec![
        req(
            "length",
            ok("Content-Length: 2\r\n", "ok"),
            Accept(Body::Length(2)),
        ),
        req("until close", ok("", "all of it"), Accept(Body::UntilClose)),
        req(
            "204 with a length",
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            Accept(Body::None),
        ),
        req(
            "chunked",
            chunked("5\r\nhello\r\n0\r\n\r\n"),
            Accept(Body::Chunked),
        ),
        req(
            "chunked, next answer follows",
            chunked("0\r\n\r\nHTTP/1.1 200 OK\r\n"),
            Accept(Body::Chunked),
        ),
        req(
            "chunked, unfinished",
            chunked("5\r\nhel"),
            Accept(Body::Chunked),
        ),
        req(
            "chunked with extensions",
            chunked("5;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n"),
            Accept(Body::Chunked),
        ),
        req(
            "chunked with trailers",
            chunked("0\r\nx-t: 1\r\ny: 2\r\n\r\n"),
            Accept(Body::Chunked),
        ),
        req(
            "chunked over a length",
            ok(
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                "0\r\n\r\n",
            ),
            Accept(Body::Chunked),
        ),
        req(
            "gzip runs to the close",
            ok("Transfer-Encoding: gzip\r\n", "xyz"),
            Accept(Body::UntilClose),
        ),
        req(
            "chunked twice",
            ok("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
            Refuse,
        ),
        req(
            "TE empty over a length",
            ok("Transfer-Encoding: \r\nContent-Length: 5\r\n", "hello"),
            Refuse,
        ),
        req(
            "HTTP/1.0 chunked",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refuse,
        ),
        req("CL 5, 6", ok("Content-Length: 5, 6\r\n", "hello!"), Refuse),
        req("CL +5", ok("Content-Length: +5\r\n", "hello"), Refuse),
        // Found by the differential fuzz target (the reference overflowed): the largest size
        // there is, a body that never ends within the input.
        req(
            "chunk size of 16 digits",
            chunked("ffffffffffffffff\r\n\r\n"),
            Accept(Body::Chunked),
        ),
        req(
            "chunk size overflow",
            chunked("ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk size 0x5",
            chunked("0x5\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk size empty",
            chunked("\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk size junk",
            chunked("5 5\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk size bare LF",
            chunked("5\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk data bare LF",
            chunked("5\r\nhello\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk data too long",
            chunked("3\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk extension NUL",
            chunked("5;a=\0\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "chunk extension bare LF",
            chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"),
            Refuse,
        ),
        req(
            "trailer obs-fold",
            chunked("0\r\nx: 1\r\n y\r\n\r\n"),
            Refuse,
        ),
        req(
            "trailer no field",
            chunked("0\r\nnot a field\r\n\r\n"),
            Refuse,
        ),
        req("last chunk bare LF", chunked("0\r\n\n"), Refuse),
        req("status 2000", "HTTP/1.1 2000 OK\r\n\r\n", Refuse),
        req(
            "space before colon",
            ok("Content-Length : 2\r\n", "ok"),
            Refuse,
        ),
        req(
            "obs-fold",
            ok("X: a\r\n b\r\nContent-Length: 2\r\n", "ok"),
            Refuse,
        ),
    ]
}

fn run(
    rows: Vec<(&'static str, Vec<u8>, Want)>,
    native: impl Fn(&[u8]) -> Option<h1_reference::Message>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, input, want) in rows {
        let got = match native(&input) {
            Some(m) => Accept(m.body),
            None => Refuse,
        };
        if got != want {
            failures.push(format!("{name}: native {got:?}, want {want:?}"));
        }
        if let Err(e) = check(&input) {
            failures.push(format!("{name}: {e}"));
        }
    }
    failures
}

#[test]
fn smuggling_requests_are_refused_or_read_as_the_reference_reads_them() {
    let failures = run(requests(), native_request);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn backend_answers_are_refused_or_read_as_the_reference_reads_them() {
    let failures = run(responses(), |b| native_response(&Method::GET, b, true));
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Chunked bodies alone, the `chunked` fuzz target's input: each chunked response row's body.
fn chunked_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    responses()
        .into_iter()
        // The target reads its first byte as the size of the pieces it scans.
        .filter_map(|(name, r, _)| Some((name, [&[3][..], r.strip_prefix(&head[..])?].concat())))
        .collect()
}

/// Writes the rows as the fuzz targets' seed corpus (with `UPDATE_FUZZ_CORPUS=1`), one file a
/// row, named after it. Heads over 64 KiB are left out: the corpus stays small.
#[test]
fn fuzz_corpus() {
    if std::env::var_os("UPDATE_FUZZ_CORPUS").is_none() {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
    let small = |rows: Vec<(&'static str, Vec<u8>)>| {
        rows.into_iter()
            .filter(|(_, b)| b.len() < 4096)
            .collect::<Vec<_>>()
    };
    let strip = |rows: Vec<(&'static str, Vec<u8>, Want)>| {
        rows.into_iter().map(|(n, b, _)| (n, b)).collect::<Vec<_>>()
    };
    let all = [strip(requests()), strip(responses())].concat();
    for (target, rows) in [
        ("request", small(strip(requests()))),
        ("response", small(strip(responses()))),
        ("chunked", small(chunked_bodies())),
        ("differential", small(all)),
    ] {
        let dir = format!("{root}/{target}");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in rows {
            let file: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            std::fs::write(format!("{dir}/{file}"), bytes).unwrap();
        }
    }
}
