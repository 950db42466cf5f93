//! A backend's answer head and its body's framing, with the head kept verbatim or rebuilt:
//! never a panic, and both ways read the same status and framing.
#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use pylon_dataplane::h1::head::{end_verbatim_response, parse_response};

fuzz_target!(|data: &[u8]| {
    for method in [Method::GET, Method::HEAD] {
        let mut rebuilt = BytesMut::from(data);
        let mut verbatim = BytesMut::from(data);
        let mut out = Vec::new();
        let a = parse_response(&mut rebuilt, &method, None);
        let b = parse_response(&mut verbatim, &method, Some(&mut out));
        match (a, b) {
            (Ok(Some(mut a)), Ok(Some(b))) => {
                assert_eq!((a.status, &a.body, a.close), (b.status, &b.body, b.close));
                assert_eq!(rebuilt.len(), verbatim.len(), "the same head split off");
                if !b.status.is_informational() {
                    end_verbatim_response(&mut out, &b.body, b.close);
                    // What the client gets is a head a strict parser reads in full.
                    let mut fields = [httparse::EMPTY_HEADER; 128];
                    let parsed = httparse::Response::new(&mut fields).parse(&out);
                    assert_eq!(parsed, Ok(httparse::Status::Complete(out.len())));
                }
                let _ = a.body.take(&rebuilt);
            }
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
            (a, b) => panic!("rebuilt {:?}, verbatim {:?}", a.is_ok(), b.is_ok()),
        }
    }
});
