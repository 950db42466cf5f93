//! Hostnames as the Gateway API writes them: exact (`a.example.com`) or wildcard
//! (`*.example.com`).
//!
//! One definition for the validator, the data plane's routing and SNI choice, and the
//! controller's route ∩ listener intersection, so both sides agree on what a wildcard covers.

/// Checks an exact (`a.example.com`) or wildcard (`*.example.com`) hostname (RFC 1123, no IPs).
pub fn check_hostname(h: &str) -> Result<(), String> {
    let rest = h.strip_prefix("*.").unwrap_or(h);
    if h.len() > 253 || rest.is_empty() {
        return Err(format!("{h:?} is not a valid hostname"));
    }
    if rest.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{h:?} is an IP address, not a hostname"));
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{h:?} is not a valid lowercase RFC 1123 hostname"));
        }
    }
    Ok(())
}

/// Does `pattern` (exact or `*.suffix`) match `host` (lowercase, no port)? A wildcard
/// matches one or more labels in place of the `*`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(check_hostname("foo.example.com").is_ok());
        assert!(check_hostname("*.example.com").is_ok());
        assert!(check_hostname("Foo.com").is_err());
        assert!(check_hostname("*").is_err());
        assert!(check_hostname("a..b").is_err());
        assert!(check_hostname("10.0.0.1").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
    }
}
