//! The config decoder: a line of the controller's stream (a snapshot or a delta, applied to the
//! last snapshot and validated as the data plane does) or a config file, YAML or JSON. Never a
//! panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_config::protocol::Update;
use pylon_config::{delta, load, validate};

/// The base a delta line applies to: the snapshot on the input's first line, if it has one.
fn base(data: &[u8]) -> Option<pylon_config::Config> {
    let first = data.split(|&b| b == b'\n').next()?;
    match serde_json::from_slice(first).ok()? {
        Update::Snapshot { config, .. } => load::check(*config).ok(),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let base = base(data);
    for line in data.split(|&b| b == b'\n') {
        match serde_json::from_slice::<Update>(line) {
            Ok(Update::Snapshot { config, .. }) => {
                let _ = load::check(*config);
            }
            Ok(Update::Delta { delta, .. }) => {
                if let Some(base) = &base
                    && let Ok((next, touched)) = delta::apply(base, &delta)
                {
                    let _ = validate::validate_touched(&next, &touched);
                }
            }
            Ok(Update::Ping) | Err(_) => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load::parse_str(text);
    }
});
