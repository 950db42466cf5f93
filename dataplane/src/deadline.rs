//! A response body that fails once the request's deadline passes, so a rule's request timeout
//! covers the whole response on the hyper path too (HTTP/2, h2c, upgrades' fallbacks, retried
//! and mirrored rules), not just the wait for its head. The server then resets the stream (or
//! closes an HTTP/1.1 connection): the client sees a truncated response, never a complete-looking
//! one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// `body`, cut off at `deadline`.
pub fn until(body: Body, deadline: Instant) -> Body {
    Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep_until(deadline)),
    }
    .boxed()
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("request timeout passed while the response body was streaming")]
struct Expired;

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Expired)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_body_still_streaming_at_the_deadline_fails_and_a_finished_one_does_not() {
        // A body that never ends.
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_like(rx));
        let body = until(stream.boxed(), Instant::now() + Duration::from_secs(1));
        let Err(err) = body.collect().await else {
            panic!("not cut off")
        };
        assert!(err.to_string().contains("request timeout"), "{err}");

        let done = until(
            crate::body::full("whole"),
            Instant::now() + Duration::from_secs(1),
        );
        let bytes = done.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"whole");
    }

    /// A receiver as a stream of frames.
    fn tokio_stream_like(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
