//! The body type everything the proxy sends is carried in, and its two trivial values. The
//! bottom of the data plane: it imports nothing of the crate, and every layer may use it.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// A body's or a connection's failure, whatever produced it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used for everything the proxy sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body of `b`, whole.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A body with nothing in it.
pub fn empty() -> Body {
    full(Bytes::new())
}
