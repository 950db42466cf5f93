//! Gateway API durations (GEP-2257): `1h`, `10s`, `500ms`, `1m30s`; at most four parts of
//! up to five digits, units h, m, s, ms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written in GEP-2257 form; kept as milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 10s, 500ms, 1m30s)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let bytes = s.as_bytes();
        let (mut i, mut parts, mut total_ms) = (0usize, 0, 0u64);
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err("a number must precede each unit"));
            }
            if i - start > 5 {
                return Err(err("more than 5 digits"));
            }
            let n: u64 = s[start..i].parse().map_err(|_| err("bad number"))?;
            let unit_ms = if s[i..].starts_with("ms") {
                i += 2;
                1
            } else {
                let u = match bytes.get(i) {
                    Some(b'h') => 3_600_000,
                    Some(b'm') => 60_000,
                    Some(b's') => 1_000,
                    _ => return Err(err("unit must be h, m, s or ms")),
                };
                i += 1;
                u
            };
            parts += 1;
            if parts > 4 {
                return Err(err("more than 4 parts"));
            }
            total_ms += n * unit_ms;
        }
        Ok(Duration(std::time::Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gep_2257() {
        let ms = |s: &str| s.parse::<Duration>().map(|d| d.0.as_millis());
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(ms("0s"), Ok(0));
        assert!(ms("").is_err());
        assert!(ms("10").is_err());
        assert!(ms("1.5s").is_err());
        assert!(ms("123456s").is_err());
        assert!(ms("1h1h1h1h1h").is_err());
        assert!(ms("s").is_err());
    }

    #[test]
    fn round_trips() {
        for s in ["10s", "1500ms"] {
            assert_eq!(s.parse::<Duration>().unwrap().to_string(), s);
        }
    }
}
