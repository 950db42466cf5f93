//! The native codec against a second parser (httparse under a strict RFC 9112 §6 framing, the
//! differential tests' `h1_reference`): a message the native codec accepts, as a request or as
//! a backend's answer, is the reference's too, read the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../dataplane/tests/h1_reference/mod.rs"]
mod h1_reference;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = h1_reference::check(data) {
        panic!("{e}");
    }
});
