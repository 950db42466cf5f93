//! The data plane's global allocator: the system allocator, except that over-aligned requests
//! of up to [`MAX_SHIFTED_ALIGN`] are served by its plain `malloc` path too.
//!
//! Why: tokio aligns every task and every I/O registration to 128 bytes (cache-line padding),
//! so each accepted connection makes two such requests. std's `System` passes them to
//! `posix_memalign`, which glibc (2.36, Debian 12) serves without its per-thread cache: it cuts
//! an aligned chunk out of a larger one and frees the pieces around it, often consolidating its
//! fast bins first. Under a new connection per request that was ~6 % of the data plane's
//! user-space instructions (callgrind; bench/README.md). Asking `malloc` for `align` bytes more
//! and returning the first aligned address in the block takes the cached path instead; the
//! block's start is kept in the word just below the address handed out.

use std::alloc::{GlobalAlloc, Layout, System};

/// What the system's `malloc` guarantees on the targets Pylon ships (x86_64 and aarch64 glibc
/// and musl): requests aligned to at most this go to `System` unchanged.
const MALLOC_ALIGN: usize = 16;
/// Larger alignments (pages, huge pages) would waste as much as they ask for: `System`.
const MAX_SHIFTED_ALIGN: usize = 256;

pub struct Malloc;

/// Over-aligned requests this allocator serves itself.
fn shifted(layout: Layout) -> bool {
    layout.align() > MALLOC_ALIGN && layout.align() <= MAX_SHIFTED_ALIGN
}

/// The block asked of `System` for a shifted request: `align` bytes more, malloc's alignment.
fn block(layout: Layout) -> Option<Layout> {
    let size = layout.size().checked_add(layout.align())?;
    Layout::from_size_align(size, MALLOC_ALIGN).ok()
}

#[allow(unsafe_code)]
// SAFETY (the trait's contract): every pointer returned is aligned to `layout.align()` and
// valid for `layout.size()` bytes: a shifted one lies in a block of `size + align` bytes, at an
// offset of 16..=align bytes from the block's start (the block is 16-aligned, `align` a power
// of two above 16), so `size` bytes fit after it and the start's address fits in the 8 bytes
// before it, inside the block. `dealloc` and `realloc` are called with the layout the pointer
// was allocated with, so they take the same branch as its `alloc` did.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !shifted(layout) {
            // SAFETY: the caller's layout, passed on.
            return unsafe { System.alloc(layout) };
        }
        let Some(block) = block(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `block` has a non-zero size (at least `align`).
        let start = unsafe { System.alloc(block) };
        if start.is_null() {
            return start;
        }
        let offset = layout.align() - (start as usize & (layout.align() - 1));
        // SAFETY: `offset` is in 16..=align (see above): inside the block, with room below for
        // the block's start, which is written 8-aligned (the result is `align`-aligned).
        unsafe {
            let aligned = start.add(offset);
            aligned.cast::<*mut u8>().sub(1).write(start);
            aligned
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !shifted(layout) {
            // SAFETY: allocated by `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: `alloc` stored the block's start just below `ptr`, and the block's layout
        // follows from `layout` as it did there (it did not overflow then).
        unsafe {
            let start = ptr.cast::<*mut u8>().sub(1).read();
            System.dealloc(start, block(layout).unwrap_unchecked());
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !shifted(layout) {
            // SAFETY: the caller's layout, passed on (`calloc` for most).
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`; the result is valid for `layout.size()` bytes.
        unsafe {
            let p = self.alloc(layout);
            if !p.is_null() {
                p.write_bytes(0, layout.size());
            }
            p
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !shifted(layout) {
            // SAFETY: allocated by `System` with this layout; the caller's new size.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` forms a valid layout with this alignment;
        // the old block is valid for `min(old, new)` bytes and freed once copied.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// Every alignment and a spread of sizes: the pointer is aligned, the whole range can be
    /// written and read back, realloc keeps the contents, and nothing overlaps the stored
    /// start (a corrupted start would crash `free` or be caught by glibc's checks).
    #[test]
    fn allocations_are_aligned_usable_and_freed() {
        let aligns = [1, 2, 8, 16, 32, 64, 128, 256, 512, 4096];
        let sizes = [1, 7, 16, 100, 128, 1000, 3456, 70_000];
        for &align in &aligns {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each pointer is freed once with its layout.
                unsafe {
                    let p = Malloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    for i in 0..size {
                        p.add(i).write(i as u8);
                    }
                    let grown = Malloc.realloc(p, layout, size * 2);
                    assert_eq!(grown as usize % align, 0, "realloc align {align}");
                    assert!((0..size).all(|i| grown.add(i).read() == i as u8));
                    let big = Layout::from_size_align(size * 2, align).unwrap();
                    Malloc.dealloc(grown, big);

                    let z = Malloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| z.add(i).read() == 0));
                    Malloc.dealloc(z, layout);
                }
            }
        }
    }

    /// The shifted path is taken exactly for what tokio asks (128) and what the system
    /// allocator cannot serve from `malloc` directly.
    #[test]
    fn only_moderately_over_aligned_requests_are_shifted() {
        let l = |align| Layout::from_size_align(64, align).unwrap();
        assert!(!shifted(l(16)));
        assert!(shifted(l(32)));
        assert!(shifted(l(128)));
        assert!(shifted(l(256)));
        assert!(!shifted(l(4096)));
    }
}
