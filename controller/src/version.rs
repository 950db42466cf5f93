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

/// FNV-1a 64 fed as it is written: a value's JSON is hashed without being buffered.
struct Fnv(u64);

impl std::io::Write for Fnv {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// FNV-1a of a value's JSON serialization (the same as [`fnv64`] of `serde_json::to_vec`).
pub fn hash_of<T: serde::Serialize>(v: &T) -> u64 {
    let mut h = Fnv(fnv64(b""));
    // Serializing the config types into a writer that cannot fail does not fail.
    let _ = serde_json::to_writer(&mut h, v);
    h.0
}

/// A config without endpoints, borrowed: what a route or listener change alters, an endpoint
/// change not.
#[derive(serde::Serialize)]
struct Structure<'a> {
    api_version: &'a str,
    listeners: &'a [dp::Listener],
    backends: BTreeMap<&'a str, (dp::BackendProtocol, &'a Option<dp::BackendTls>)>,
}

/// The versions of a config: (structure, full). `full` is what is sent and acked.
pub fn of(config: &dp::Config) -> (String, String) {
    let structure = Structure {
        api_version: &config.api_version,
        listeners: &config.listeners,
        backends: config
            .backends
            .iter()
            .map(|(k, b)| (k.as_str(), (b.protocol, &b.tls)))
            .collect(),
    };
    let structure = format!("{:016x}", hash_of(&structure));
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
    fn streamed_hash_is_the_hash_of_the_serialization() {
        let v = serde_json::json!({"a": [1, 2, "three"], "b": {"c": null}});
        assert_eq!(hash_of(&v), fnv64(&serde_json::to_vec(&v).unwrap()));
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
