//! The HTTP/1.1 codec (RFC 9112): request and response heads parsed in place and written,
//! message framing (Content-Length, chunked) in both directions, the read buffers and the
//! connection timers. It knows nothing of routes, backends or the proxy: the native serving
//! engine ([`crate::native`]) drives it.

pub mod buffers;
pub mod framing;
pub mod head;
pub mod timer;
