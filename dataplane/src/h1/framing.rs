//! Where an HTTP/1.1 message body ends (RFC 9112 §6): by Content-Length, by the chunked
//! coding, or by the connection closing. The native path relays bodies as they are (chunked
//! stays chunked) and only needs to know which bytes belong to the current message.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, StatusCode};

/// A body whose framing cannot be trusted; the message (and its connection) is abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("invalid chunked coding")]
    Chunked,
}

/// How the rest of a body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// No body (or none left).
    Empty,
    /// This many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the peer closes (responses only).
    UntilClose,
}

impl Framing {
    /// Of `data`, the next bytes read from the peer, how many belong to the body, and whether
    /// the body ends with them. Bytes past the end belong to the next message.
    pub fn take(&mut self, data: &[u8]) -> Result<(usize, bool), FramingError> {
        match self {
            Framing::Empty => Ok((0, true)),
            Framing::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                Ok((n as usize, *left == 0))
            }
            Framing::Chunked(c) => Ok(match c.scan(data)? {
                Some(n) => (n, true),
                None => (data.len(), false),
            }),
            Framing::UntilClose => Ok((data.len(), false)),
        }
    }

    /// True once nothing of the body is left to read.
    pub fn is_done(&self) -> bool {
        match self {
            Framing::Empty | Framing::Length(0) => true,
            Framing::Chunked(c) => c.is_done(),
            Framing::Length(_) | Framing::UntilClose => false,
        }
    }
}

/// The body of a response to `method` with `status` whose header fields are `fields` (name,
/// value) (RFC 9112 §6.3).
pub fn response<'a>(
    method: &Method,
    status: StatusCode,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Result<Framing, FramingError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let named = |name: &'static str| {
        fields
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    };
    let c = crate::fields::codings(named(TRANSFER_ENCODING.as_str()));
    // A Transfer-Encoding field that lists no coding: a recipient that goes by the field's
    // presence reads the body differently from one that goes by its (empty) list, and the
    // field would be relayed beside our Content-Length.
    if !c.any && named(TRANSFER_ENCODING.as_str()).next().is_some() {
        return Err(FramingError::Chunked);
    }
    if c.any {
        // Chunked may be applied once (RFC 9112 §7); a body coded twice is not relayed.
        if c.chunked > 1 {
            return Err(FramingError::Chunked);
        }
        // The final coding decides: chunked delimits the body, anything else runs to close.
        return Ok(if c.last_chunked {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::UntilClose
        });
    }
    match content_length(named(CONTENT_LENGTH.as_str()))? {
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::UntilClose),
    }
}

/// The Content-Length given by the field `values`, if any; several fields or list members
/// must all agree.
pub fn content_length<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, FramingError> {
    let mut found = None;
    for v in values {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(FramingError::ContentLength);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or(FramingError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// A scanner over the chunked coding (RFC 9112 §7.1): finds where the body ends without
/// decoding it, and checks the syntax of what it relays as received: size lines (hex digits,
/// optional whitespace before a `;`, extensions of visible characters), CRLF line ends and
/// trailer fields (a token name, a colon, a value without control characters). What another
/// parser could read differently (`5 5`, a NUL in an extension, a bare LF, obs-fold in a
/// trailer) is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size: its value and digit count.
    Size(u64, u8),
    /// Whitespace after the size (before a `;` or the line's end).
    SizeWs(u64),
    /// Chunk extensions, up to the CR.
    Extension(u64),
    /// The LF ending the size line.
    SizeLf(u64),
    /// Chunk data left.
    Data(u64),
    DataCr,
    DataLf,
    /// The start of a trailer line (or of the final empty line).
    LineStart,
    /// A trailer field's name.
    TrailerName,
    /// A trailer field's value.
    Trailer,
    /// The LF ending a trailer field line.
    TrailerLf,
    /// The LF of the final empty line.
    FinalLf,
    Done,
}

impl Default for State {
    fn default() -> Self {
        State::Size(0, 0)
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans the next bytes of the body: `Some(n)` = the body ended after `n` of them, `None` =
    /// all of them belong to it and more follows.
    pub fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, FramingError> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                State::Size(v, digits) => match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => State::Size(v << 4 | u64::from(d), digits + 1),
                    Some(_) => return Err(FramingError::Chunked),
                    None if digits == 0 => return Err(FramingError::Chunked),
                    None => match b {
                        b'\r' => State::SizeLf(v),
                        b';' => State::Extension(v),
                        b' ' | b'\t' => State::SizeWs(v),
                        _ => return Err(FramingError::Chunked),
                    },
                },
                State::SizeWs(v) => match b {
                    b' ' | b'\t' => State::SizeWs(v),
                    b';' => State::Extension(v),
                    b'\r' => State::SizeLf(v),
                    _ => return Err(FramingError::Chunked),
                },
                State::Extension(v) => match b {
                    b'\r' => State::SizeLf(v),
                    b if field_char(b) => State::Extension(v),
                    _ => return Err(FramingError::Chunked),
                },
                State::SizeLf(v) => match (b, v) {
                    (b'\n', 0) => State::LineStart,
                    (b'\n', v) => State::Data(v),
                    _ => return Err(FramingError::Chunked),
                },
                State::Data(left) => {
                    // Skip the chunk's data in one step.
                    let n = left.min((data.len() - i) as u64);
                    i += n as usize;
                    self.state = if n == left {
                        State::DataCr
                    } else {
                        State::Data(left - n)
                    };
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size(0, 0),
                State::DataCr | State::DataLf => return Err(FramingError::Chunked),
                State::LineStart if b == b'\r' => State::FinalLf,
                // Lines end in CRLF only: a bare LF is where parsers disagree (smuggling), and
                // so is a line starting with whitespace (obs-fold) or an empty name.
                State::LineStart | State::TrailerName if token_char(b) => State::TrailerName,
                State::TrailerName if b == b':' => State::Trailer,
                State::LineStart | State::TrailerName => return Err(FramingError::Chunked),
                State::Trailer if b == b'\r' => State::TrailerLf,
                State::Trailer if field_char(b) => State::Trailer,
                State::Trailer => return Err(FramingError::Chunked),
                State::TrailerLf if b == b'\n' => State::LineStart,
                State::TrailerLf => return Err(FramingError::Chunked),
                State::FinalLf if b == b'\n' => {
                    self.state = State::Done;
                    return Ok(Some(i + 1));
                }
                State::FinalLf => return Err(FramingError::Chunked),
                State::Done => return Ok(Some(i)),
            };
            i += 1;
        }
        Ok((self.state == State::Done).then_some(data.len()))
    }
}

/// A character of a field value or chunk extension: visible, whitespace or obs-text, no
/// control character (RFC 9110 §5.5).
fn field_char(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A character of a token, such as a field name (RFC 9110 §5.6.2).
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; returns where the scanner said it ended.
    fn end_of(body: &[u8], step: usize) -> Result<Option<usize>, FramingError> {
        let mut c = Chunked::default();
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = c.scan(piece)? {
                return Ok(Some(at + n));
            }
            at += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_bodies_end_where_the_coding_says_in_any_split() {
        let cases: [(&[u8], usize); 7] = [
            (b"5\r\nhello\r\n0\r\n\r\n", 15),
            (
                b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
                43,
            ),
            (b"0\r\nx-trailer: 1\r\nother: 2\r\n\r\n", 29),
            (b"A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 20),
            (b"0\r\n\r\n", 5),
            (b"5 ;a=\"b c\"\r\nhello\r\n0\r\n\r\n", 24),
            (b"5\t \r\nhello\r\n0\r\nx:\t\xe9 v\r\n\r\n", 25),
        ];
        for (body, end) in cases {
            for step in [1, 2, 3, 7, body.len()] {
                assert_eq!(end_of(body, step), Ok(Some(end)), "{body:?} step {step}");
            }
        }
    }

    #[test]
    fn malformed_or_unfinished_chunked_bodies_are_told_apart() {
        assert_eq!(end_of(b"5\r\nhello\r\n0\r\n", 1), Ok(None), "unfinished");
        assert_eq!(end_of(b"5\r\nhello\r\n", 4), Ok(None), "unfinished");
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello",
            b"11111111111111111\r\n",
            b"0\r\n\n",
            b"0\r\nx-trailer: 1\n\r\n",
            // Junk after the size, control characters in an extension.
            b"5 5\r\n",
            b"5;a\0b\r\n",
            b"5;a\x01\r\n",
            b"5 x\r\n",
            // Trailers: obs-fold, no name, whitespace before the colon, no colon, a NUL.
            b"0\r\nx: 1\r\n folded\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nx : 1\r\n\r\n",
            b"0\r\nnocolon\r\n\r\n",
            b"0\r\nx: a\0b\r\n\r\n",
        ] {
            assert_eq!(end_of(bad, 1), Err(FramingError::Chunked), "{bad:?}");
        }
    }

    #[test]
    fn length_framing_counts_down() {
        let mut f = Framing::Length(5);
        assert_eq!(f.take(b"abc"), Ok((3, false)));
        assert_eq!(f.take(b"defgh"), Ok((2, true)));
        assert!(f.is_done());
        assert_eq!(Framing::UntilClose.take(b"abc"), Ok((3, false)));
        assert_eq!(Framing::Empty.take(b"abc"), Ok((0, true)));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let h = |pairs: &'static [(&'static str, &'static str)]| {
            pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        };
        let ok = StatusCode::OK;
        let get = Method::GET;
        let cl = h(&[("content-length", "12")]);
        assert_eq!(response(&Method::HEAD, ok, cl.clone()), Ok(Framing::Empty));
        assert_eq!(
            response(&get, StatusCode::NO_CONTENT, cl.clone()),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response(&get, StatusCode::NOT_MODIFIED, cl.clone()),
            Ok(Framing::Empty)
        );
        assert_eq!(response(&get, ok, cl), Ok(Framing::Length(12)));
        assert_eq!(
            response(&get, ok, h(&[("content-length", "3, 3")])),
            Ok(Framing::Length(3))
        );
        for bad in ["3, 4", "-1", "", "1e3"] {
            let fields = [("Content-Length".as_bytes(), bad.as_bytes())];
            assert_eq!(
                response(&get, ok, fields.iter().copied()),
                Err(FramingError::ContentLength),
                "{bad}"
            );
        }
        let chunked = h(&[
            ("Transfer-Encoding", "gzip, chunked"),
            ("content-length", "3"),
        ]);
        assert!(matches!(
            response(&get, ok, chunked),
            Ok(Framing::Chunked(_))
        ));
        assert_eq!(
            response(&get, ok, h(&[("transfer-encoding", "gzip")])),
            Ok(Framing::UntilClose)
        );
        // Chunked is the last coding of the last field, once.
        assert!(matches!(
            response(
                &get,
                ok,
                h(&[
                    ("transfer-encoding", "gzip"),
                    ("transfer-encoding", "chunked")
                ])
            ),
            Ok(Framing::Chunked(_))
        ));
        assert_eq!(
            response(&get, ok, h(&[("transfer-encoding", "chunked, gzip")])),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            response(&get, ok, h(&[("transfer-encoding", "chunked, Chunked")])),
            Err(FramingError::Chunked)
        );
        assert_eq!(response(&get, ok, h(&[])), Ok(Framing::UntilClose));
        // Found by the differential test: an empty Transfer-Encoding was ignored, and the
        // body framed by the Content-Length beside it.
        for empty in ["", " , "] {
            let fields = [
                ("transfer-encoding".as_bytes(), empty.as_bytes()),
                (b"content-length", b"5"),
            ];
            assert_eq!(
                response(&get, ok, fields.iter().copied()),
                Err(FramingError::Chunked),
                "{empty:?}"
            );
        }
    }
}
