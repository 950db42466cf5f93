//! A bound on the memory that all client connections' unfinished request heads hold together.
//!
//! Why: a connection reads its head into a buffer of one read chunk, grown as more of a large
//! head arrives, up to the head limit (64 KiB). A client that opens many connections and sends
//! each a large head slowly (never finishing it within the header-read timeout) made each hold
//! ~65 KB: 2,000 of them 149 MB, and at the default 10,000 connections ~650 MB. With the budget,
//! growing a head's buffer past the first chunk takes bytes from one process-wide pool; when
//! the pool is spent, the connection that needed more is answered 503 and closed, and the
//! heads already being read carry on. Ordinary heads fit one chunk and never touch the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The pool (shared by every worker's listeners).
#[derive(Debug)]
pub struct HeadBudget {
    cap: usize,
    used: AtomicUsize,
}

impl HeadBudget {
    pub fn new(cap: usize) -> Arc<HeadBudget> {
        Arc::new(HeadBudget {
            cap,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now, by all connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// What one connection holds of the pool; given back when its head is complete (or it closes).
#[derive(Debug)]
pub struct Held {
    budget: Arc<HeadBudget>,
    bytes: usize,
}

impl Held {
    pub fn new(budget: &Arc<HeadBudget>) -> Held {
        Held {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Holds at least `bytes` in all; false (holding what it held) if the pool lacks them.
    pub fn hold(&mut self, bytes: usize) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes).filter(|m| *m > 0) else {
            return true;
        };
        let cap = self.budget.cap;
        let took = self
            .budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + more <= cap).then_some(u + more)
            })
            .is_ok();
        if took {
            self.bytes = bytes;
        }
        took
    }

    pub fn release(&mut self) {
        if self.bytes > 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
            self.bytes = 0;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_the_cap_and_gives_back() {
        let pool = HeadBudget::new(100);
        let (mut a, mut b) = (Held::new(&pool), Held::new(&pool));
        assert!(a.hold(60));
        assert!(a.hold(40), "already held");
        assert!(!b.hold(50), "over the cap");
        assert!(b.hold(40));
        assert_eq!(pool.used(), 100);
        a.release();
        assert_eq!(pool.used(), 40);
        assert!(b.hold(90));
        drop(b);
        assert_eq!(pool.used(), 0);
    }
}
