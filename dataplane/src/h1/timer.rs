//! One lazily re-armed timer per connection for its idle, header-read and inactivity
//! deadlines.
//!
//! Arming a timer per request (as hyper's header-read timeout does) costs a timer-wheel
//! insertion and removal per request. Here the timer stays armed at some deadline; a wait
//! with a later deadline leaves it alone, and when it fires early the wait re-arms it to its
//! own deadline. On a busy keep-alive connection it fires about once per idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{Duration, Instant, Sleep};

/// Created on the first wait that does not complete at once: a connection whose request is
/// already there when it is accepted, and that closes after one answer, never arms it.
#[derive(Default)]
pub struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

/// The deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl Timer {
    /// Runs `f` to completion unless `limit` passes first; the clock is read (and the timer
    /// touched) only if `f` does not complete at once, as most writes do.
    pub async fn run_for<F: Future>(
        &mut self,
        limit: Duration,
        f: F,
    ) -> Result<F::Output, Elapsed> {
        let mut f = std::pin::pin!(f);
        let first = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = first {
            return Ok(out);
        }
        self.run(Instant::now() + limit, f).await
    }

    /// Runs `f` to completion unless `deadline` passes first.
    pub async fn run<F: Future>(&mut self, deadline: Instant, f: F) -> Result<F::Output, Elapsed> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        let mut f = std::pin::pin!(f);
        loop {
            tokio::select! {
                biased;
                out = &mut f => return Ok(out),
                () = sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(Elapsed);
                    }
                    sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn earlier_deadlines_re_arm_and_later_ones_wait_for_the_early_fire() {
        let mut t = Timer::default();
        let start = Instant::now();
        // An earlier deadline than the armed one takes effect.
        let r = t
            .run(start + Duration::from_secs(1), std::future::pending::<()>())
            .await;
        assert_eq!(r, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // A later one survives the timer firing at the old deadline.
        let r = t
            .run(
                start + Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(3)),
            )
            .await;
        assert_eq!(r, Ok(()));
        let r = t
            .run(
                start + Duration::from_secs(10),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }
}
