//! Content-derived config versions.
//!
//! Every controller replica translates the same inputs into the same config, so a version
//! derived from the config's content is the same string on every replica: a data plane may
//! stream from one replica and have its ack read by another (the leader). A version is
//! `<structure>.<endpoints>`: a hash of the config without endpoints, then a hash of the
//! endpoints. An endpoint-only change keeps the first half, which is what honest status keys
//! its per-route records on; an unchanged config keeps its whole version.
//!
//! The hash is 64-bit FNV-1a over the config's JSON serialization, each route standing for
//! its own such hash: stable across processes, builds and Rust versions (unlike
//! `DefaultHasher`), and canonical because every map in the data-plane config is a `BTreeMap`
//! (sorted keys). A route's hash is kept with the route ([`RouteHashes`]): translation shares
//! unchanged routes between configs, so a change hashes the routes it changed, not all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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

/// The hash of every route of the configs last seen, by the route's allocation (the route is
/// held, so its address cannot be reused by another while it is in the cache).
#[derive(Default)]
pub struct RouteHashes {
    by_route: HashMap<usize, (Arc<dp::Route>, u64)>,
}

/// Per listener of a config, its routes' hashes, in order.
pub type Hashed = Vec<Vec<u64>>;

impl RouteHashes {
    /// The hashes of `config`'s routes, computed for those not seen in the last config; the
    /// cache then holds this config's routes only.
    pub fn of(&mut self, config: &dp::Config) -> Hashed {
        let mut next = HashMap::with_capacity(self.by_route.len());
        let hashed = config
            .listeners
            .iter()
            .map(|l| {
                l.routes
                    .iter()
                    .map(|r| {
                        let at = Arc::as_ptr(r) as usize;
                        let h = match self.by_route.get(&at) {
                            Some((_, h)) => *h,
                            None => hash_of(&**r),
                        };
                        next.insert(at, (r.clone(), h));
                        h
                    })
                    .collect()
            })
            .collect();
        self.by_route = next;
        hashed
    }
}

/// A listener without its routes, which stand for their hashes.
#[derive(serde::Serialize)]
struct ListenerForm<'a> {
    name: &'a str,
    port: u16,
    protocol: dp::ListenerProtocol,
    hostname: &'a Option<String>,
    tls: &'a Option<dp::ListenerTls>,
    routes: &'a [u64],
}

/// A config without endpoints, borrowed: what a route or listener change alters, an endpoint
/// change not.
#[derive(serde::Serialize)]
struct Structure<'a> {
    api_version: &'a str,
    listeners: Vec<ListenerForm<'a>>,
    backends: BTreeMap<&'a str, (dp::BackendProtocol, &'a Option<dp::BackendTls>)>,
}

/// The versions of a config: (structure, full). `full` is what is sent and acked.
pub fn of(config: &dp::Config) -> (String, String) {
    of_hashed(config, &RouteHashes::default().of(config))
}

/// [`of`], given the config's route hashes ([`RouteHashes::of`]).
pub fn of_hashed(config: &dp::Config, routes: &Hashed) -> (String, String) {
    let structure = Structure {
        api_version: &config.api_version,
        listeners: config
            .listeners
            .iter()
            .zip(routes)
            .map(|(l, routes)| ListenerForm {
                name: &l.name,
                port: l.port,
                protocol: l.protocol,
                hostname: &l.hostname,
                tls: &l.tls,
                routes,
            })
            .collect(),
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
    fn cached_route_hashes_give_the_version_of_a_fresh_hash() {
        let route = |name: &str, host: &str| {
            Arc::new(dp::Route {
                kind: dp::RouteKind::Http,
                namespace: "default".into(),
                name: name.into(),
                creation_timestamp: Default::default(),
                hostnames: vec![host.into()],
                rules: vec![],
            })
        };
        let config = |routes: Vec<Arc<dp::Route>>| dp::Config {
            api_version: dp::API_VERSION.into(),
            listeners: vec![dp::Listener {
                name: "http".into(),
                port: 80,
                protocol: dp::ListenerProtocol::Http,
                hostname: None,
                tls: None,
                routes,
            }],
            backends: BTreeMap::new(),
        };
        let (a, b) = (route("a", "a.example.com"), route("b", "b.example.com"));
        let mut cache = RouteHashes::default();
        let first = config(vec![a.clone(), b.clone()]);
        assert_eq!(of_hashed(&first, &cache.of(&first)), of(&first));
        // b changes (a new route object), a is kept: the cache hashes b again, and the
        // version is that of hashing everything afresh, and another than before.
        let second = config(vec![a.clone(), route("b", "c.example.com")]);
        let cached = of_hashed(&second, &cache.of(&second));
        assert_eq!(cached, of(&second));
        assert_ne!(cached, of(&first));
        assert_eq!(
            cache.by_route.len(),
            2,
            "only the current config's routes are held"
        );
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
