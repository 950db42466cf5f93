//! The chunked-coding scanner: never a panic, and where the body ends does not depend on how
//! the bytes were split between reads (the input's first byte picks the split).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_dataplane::h1::framing::Chunked;

/// Where the body ends when scanned `step` bytes at a time: `Ok(None)` = not within `data`.
fn end_of(data: &[u8], step: usize) -> Result<Option<usize>, ()> {
    let mut c = Chunked::default();
    let mut at = 0;
    for piece in data.chunks(step) {
        if let Some(n) = c.scan(piece).map_err(|_| ())? {
            assert!(n <= piece.len());
            assert!(c.is_done());
            return Ok(Some(at + n));
        }
        at += piece.len();
    }
    Ok(None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let whole = end_of(body, body.len().max(1));
    assert_eq!(
        whole,
        end_of(body, usize::from(step).max(1)),
        "split at {step}"
    );
    assert_eq!(whole, end_of(body, 1), "byte by byte");
});
