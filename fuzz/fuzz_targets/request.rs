//! A request head and its body's framing, as the native engine reads them: never a panic, and a
//! head that is split off leaves exactly the bytes after it (no byte lost or read twice).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pylon_dataplane::h1::head::{Parsed, parse_request};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    match parse_request(&mut buf, 64 * 1024) {
        Parsed::Request(mut h) => {
            assert_eq!(h.raw.len() + buf.len(), data.len());
            assert_eq!(&h.raw[..], &data[..h.raw.len()]);
            let (n, done) = h.body.take(&buf).expect("a length never fails");
            assert!(n <= buf.len());
            assert_eq!(done, h.body.is_done());
        }
        Parsed::Unsupported(raw) => {
            // What hyper gets: the bytes as received.
            assert_eq!(&raw[..], &data[..raw.len()]);
            assert_eq!(&buf[..], &data[raw.len()..]);
        }
        Parsed::Partial | Parsed::TooLarge | Parsed::NotHttp1 => {}
    }
});
