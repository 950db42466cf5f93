//! Field-value syntax both HTTP/1.1 engines and the request path share (RFC 9110 §5.6): comma
//! lists, the options of a Connection field, the codings of a Transfer-Encoding. Pure, and
//! below everything that parses or forwards messages.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// A backend's answer head larger than this is refused (502), however it arrived and whichever
/// client read it (the native relay, or hyper's with `max_buf_size`/`max_header_list_size`).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The members of comma-separated field `values` (RFC 9110 §5.6.1): the options of a
/// Connection field (`close`, `upgrade`, header names), the codings of a Transfer-Encoding.
pub(crate) fn list_tokens<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The options a message's Connection header fields list.
pub(crate) fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    list_tokens(
        h.get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

/// Does a Connection field of `h` list `token`?
pub(crate) fn connection_lists(h: &HeaderMap, token: &[u8]) -> bool {
    connection_tokens(h).any(|t| t.eq_ignore_ascii_case(token))
}

/// Headers a `Connection` header may not name for removal: the framing (set per hop anyway)
/// and the Host.
const PROTECTED: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// Whether a Connection option names a header field to remove: not the framing or the Host,
/// and not `close` or `keep-alive` (options, not fields; Keep-Alive is hop-by-hop anyway).
pub(crate) fn names_removable_field(token: &[u8]) -> bool {
    !(token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"keep-alive")
        || PROTECTED
            .iter()
            .any(|p| token.eq_ignore_ascii_case(p.as_str().as_bytes())))
}

/// What a message's Transfer-Encoding fields say (RFC 9112 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Codings {
    /// Any coding is listed.
    pub any: bool,
    /// How often `chunked` is listed (more than once is a faulty message, RFC 9112 §7).
    pub chunked: usize,
    /// The last coding listed is `chunked`: it delimits the body.
    pub last_chunked: bool,
    /// A coding other than `chunked` is listed.
    pub other: bool,
}

/// The codings of the Transfer-Encoding field `values`.
pub(crate) fn codings<'a>(values: impl Iterator<Item = &'a [u8]>) -> Codings {
    let mut c = Codings::default();
    for t in list_tokens(values) {
        c.any = true;
        c.last_chunked = t.eq_ignore_ascii_case(b"chunked");
        c.chunked += usize::from(c.last_chunked);
        c.other |= !c.last_chunked;
    }
    c
}

/// The codings of `h`'s Transfer-Encoding fields.
pub(crate) fn transfer_codings(h: &HeaderMap) -> Codings {
    codings(
        h.get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings_are_read_from_every_field_and_member() {
        let c = |v: &[&'static str]| codings(v.iter().map(|s| s.as_bytes()));
        assert_eq!(c(&[]), Codings::default());
        let chunked = c(&["chunked"]);
        assert!(chunked.any && chunked.last_chunked && !chunked.other);
        let gz = c(&["gzip , Chunked"]);
        assert!(gz.last_chunked && gz.other && gz.chunked == 1);
        let twice = c(&["chunked", "chunked"]);
        assert_eq!(twice.chunked, 2);
        assert!(!c(&["chunked, gzip"]).last_chunked);
        assert!(!c(&[" , "]).any, "empty members are not codings");
    }
}
