//! Read buffers recycled between a worker's connections.
//!
//! A native connection reads into up to two buffers of [`READ_CHUNK`] bytes (the client's and
//! the backend's). Allocated anew for each connection, each costs glibc a trip through its
//! large-chunk bins, and often a consolidation of its fast bins. The buffers of a closed
//! connection are kept here for the next one, per worker thread (no lock), up to
//! [`MAX_SPARE`] of them, so a burst of connections leaves at most that much behind
//! (1 MiB). Measured with one request per connection, together with the peer address's
//! formatting (`proxy::ipv4_text`): about 0.35 µs less user CPU per connection, of about 5
//! (bench/README.md).

use std::cell::RefCell;

use bytes::BytesMut;

/// Read buffers grow by this much when nearly full.
pub const READ_CHUNK: usize = 8 * 1024;

/// Spare buffers kept per worker thread. Two per connection: with 64 connections opening and
/// closing, the number in use swings by about 128 between a burst of accepts and a burst of
/// closes, and a list of 64 overflowed (freed) and ran dry (allocated) on every such swing.
const MAX_SPARE: usize = 128;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least [`READ_CHUNK`] bytes.
pub fn take() -> BytesMut {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
}

/// Keeps `buf` for a later [`take`] if it is still the size [`take`] makes: buffers that grew
/// for a large head or body are let go, so the spares never hold more than
/// `MAX_SPARE × READ_CHUNK`.
pub fn give(mut buf: BytesMut) {
    buf.clear();
    // What was read has been split or advanced off the front; if nothing else holds a part of
    // the allocation, this moves the buffer back to its start (without allocating), so its
    // capacity is the whole allocation's. A buffer still shared keeps only its tail's
    // capacity, which no longer matches.
    let _ = buf.try_reclaim(buf.capacity() + 1);
    if buf.capacity() != READ_CHUNK {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < MAX_SPARE {
            s.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_whole_only_at_their_size_and_up_to_a_bound() {
        let spare = || SPARE.with(|s| s.borrow().len());
        let mut a = take();
        assert!(a.capacity() == READ_CHUNK && a.is_empty());
        // A head split off and dropped, as after a request: the buffer comes back whole.
        a.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = a.as_ptr();
        drop(a.split_to(8).freeze());
        give(a);
        let b = take();
        assert_eq!(b.as_ptr(), ptr, "a returned buffer is handed out again");
        assert_eq!(b.capacity(), READ_CHUNK);
        assert!(b.is_empty());

        // Still shared with a head split off it: not kept.
        let before = spare();
        let mut shared = b;
        shared.extend_from_slice(b"head");
        let head = shared.split_to(4).freeze();
        give(shared);
        assert_eq!(spare(), before);
        drop(head);

        // Grown for a large head, even if most of it was split off since: not kept.
        let mut grown = take();
        grown.extend_from_slice(&[b'x'; 3 * READ_CHUNK]);
        drop(grown.split_to(3 * READ_CHUNK - 10).freeze());
        give(grown);
        assert_eq!(spare(), before);

        for _ in 0..MAX_SPARE + 10 {
            give(BytesMut::with_capacity(READ_CHUNK));
        }
        assert_eq!(spare(), MAX_SPARE);
    }
}
