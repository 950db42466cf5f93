//! Proxy errors and the one function that turns them into HTTP or gRPC answers.

use http::{HeaderValue, Response, StatusCode};

use crate::body::{Body, empty, full};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no listener or route matches the request")]
    NoRoute,
    #[error("TLS SNI selects a different listener than the Host header")]
    Misdirected,
    #[error("the selected backend reference is invalid")]
    InvalidBackend,
    #[error("the backend has no ready endpoints")]
    NoEndpoints,
    #[error("could not connect to the backend")]
    Connect,
    #[error("the backend failed to answer")]
    Upstream,
    #[error("timed out")]
    Timeout,
    #[error("request body too large to buffer")]
    BodyTooLarge,
    #[error("malformed request: {0}")]
    BadRequest(Malformed),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("transfer coding not implemented")]
    NotImplemented,
    #[error("request line too long")]
    UriTooLong,
    #[error("request header fields too large")]
    HeaderTooLarge,
    #[error("too many large request heads are being read; try again")]
    HeadsOverBudget,
}

/// What is wrong with a request answered 400: said in the answer's body, so a client (or the
/// person reading its log) knows what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("an HTTP/1.1 request needs exactly one Host field")]
    HostCount,
    #[error("invalid Host or :authority (a name or IP literal and a numeric port, no userinfo)")]
    Host,
    #[error("invalid request target")]
    Target,
    #[error("invalid path (a percent sign not followed by two hex digits)")]
    Path,
    #[error("invalid message framing")]
    Framing,
    #[error("invalid request body")]
    Body,
    #[error("the rewritten path or hostname is not a valid request target")]
    Rewrite,
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::InvalidBackend => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::NoEndpoints | ProxyError::Connect => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ProxyError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProxyError::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::HeadsOverBudget => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
    pub fn grpc_status(self) -> u8 {
        match self {
            ProxyError::NoRoute => 12,        // UNIMPLEMENTED
            ProxyError::InvalidBackend => 13, // INTERNAL
            ProxyError::Timeout => 4,         // DEADLINE_EXCEEDED
            ProxyError::BodyTooLarge | ProxyError::UriTooLong | ProxyError::HeaderTooLarge => 8, // RESOURCE_EXHAUSTED
            ProxyError::BadRequest(_) => 3, // INVALID_ARGUMENT
            ProxyError::MethodNotAllowed | ProxyError::NotImplemented => 12, // UNIMPLEMENTED
            ProxyError::Misdirected
            | ProxyError::NoEndpoints
            | ProxyError::Connect
            | ProxyError::Upstream
            | ProxyError::HeadsOverBudget => 14, // UNAVAILABLE
        }
    }

    /// Whether an HTTP/1.1 connection closes after this answer: the request was refused for
    /// what it is (its framing, target or method), so what follows it on the connection is
    /// not trusted to be the next request (a refused CONNECT's tunnel bytes, a body of unknown
    /// length). nginx closes after these too.
    pub fn closes(self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::MethodNotAllowed
                | ProxyError::NotImplemented
                | ProxyError::UriTooLong
                | ProxyError::HeaderTooLarge
                | ProxyError::HeadsOverBudget
        )
    }

    /// The answer to send: plain HTTP, or for gRPC requests HTTP 200 with `grpc-status`.
    pub fn into_response(self, grpc: bool) -> Response<Body> {
        if grpc {
            let mut r = Response::new(empty());
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert(
                "grpc-status",
                HeaderValue::from(u16::from(self.grpc_status())),
            );
            h.insert(
                "grpc-message",
                HeaderValue::from_str(&self.to_string().replace(' ', "%20")).expect("ascii"),
            );
            return r;
        }
        let mut r = Response::new(full(format!("{}\n", self)));
        *r.status_mut() = self.status();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        if self.closes() {
            // hyper closes after an answer that says so (and drops the field on HTTP/2).
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_grpc_mappings() {
        let cases = [
            (ProxyError::NoRoute, 404, 12),
            (ProxyError::InvalidBackend, 500, 13),
            (ProxyError::NoEndpoints, 503, 14),
            (ProxyError::Timeout, 504, 4),
            (ProxyError::Misdirected, 421, 14),
            (ProxyError::BadRequest(Malformed::Host), 400, 3),
            (ProxyError::MethodNotAllowed, 405, 12),
            (ProxyError::NotImplemented, 501, 12),
            (ProxyError::UriTooLong, 414, 8),
            (ProxyError::HeaderTooLarge, 431, 8),
        ];
        for (e, http, grpc) in cases {
            assert_eq!(e.into_response(false).status().as_u16(), http, "{e:?}");
            let g = e.into_response(true);
            assert_eq!(g.status(), 200);
            assert_eq!(
                g.headers()["grpc-status"],
                grpc.to_string().as_str(),
                "{e:?}"
            );
        }
    }
}
