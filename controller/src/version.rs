//! Content-derived config versions.
//!
//! Every controller replica translates the same inputs into the same config, so a version
//! derived from the config's content is the same string on every replica: a data plane may
//! stream from one replica and have its ack read by another (the leader). A version is
//! `<structure>.<endpoints>`: a hash of the config without endpoints, then a hash of the
//! endpoints. An endpoint-only change keeps the first half, which is what honest status keys
//! its per-route records on; an unchanged config keeps its whole version.
//!
//! The hash is 64-bit FNV-1a over the config's JSON serialization: stable across processes,
//! builds and Rust versions (unlike `DefaultHasher`), and canonical because every map in the
//! data-plane config is a `BTreeMap` (sorted keys).

use std::collections::BTreeMap;

use pylon_config as dp;

/// 64-bit FNV-1a.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a of a value's JSON serialization.
pub fn hash_of<T: serde::Serialize>(v: &T) -> u64 {
    fnv64(&serde_json::to_vec(v).unwrap_or_default())
}

/// A config without endpoints: what a route or listener change alters, an endpoint change not.
pub fn without_endpoints(c: &dp::Config) -> dp::Config {
    let mut c = c.clone();
    for b in c.backends.values_mut() {
        b.endpoints.clear();
    }
    c
}

/// The versions of a config: (structure, full). `full` is what is sent and acked.
pub fn of(config: &dp::Config) -> (String, String) {
    let structure = format!("{:016x}", hash_of(&without_endpoints(config)));
    let endpoints: BTreeMap<&String, &Vec<dp::Endpoint>> = config
        .backends
        .iter()
        .map(|(k, b)| (k, &b.endpoints))
        .collect();
    let full = format!("{structure}.{:016x}", hash_of(&endpoints));
    (structure, full)
}

/// The structure half of a version this controller sends, or `None` if `v` is not one.
pub fn structure(v: &str) -> Option<&str> {
    let (s, e) = v.split_once('.')?;
    let hex = |p: &str| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(s) && hex(e)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn structure_parses_only_our_versions() {
        assert_eq!(
            structure("0123456789abcdef.fedcba9876543210"),
            Some("0123456789abcdef")
        );
        for bad in ["7", "x", "0123456789abcdef", "0123456789abcdef.", "zz.zz"] {
            assert_eq!(structure(bad), None, "{bad}");
        }
    }
}
