//! The URI subject alternative names of an X.509 certificate (RFC 5280 §4.2.1.6).
//!
//! rustls/webpki verify DNS names and IP addresses but expose no URI SANs, which
//! BackendTLSPolicy `subjectAltNames` of type URI (e.g. SPIFFE IDs) need. This is a minimal
//! DER walk over the already chain-verified certificate: Certificate → tbsCertificate →
//! extensions [3] → subjectAltName (2.5.29.17) → GeneralName uniformResourceIdentifier [6].

/// DER encoding of the subjectAltName OID 2.5.29.17.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// One TLV: its tag, its contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits say how many length bytes follow (at most 4 here).
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of a TLV that must have tag `want`.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, value, rest) = tlv(input)?;
    (tag == want).then_some((value, rest))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in tbsCertificate.
const EXTENSIONS: u8 = 0xa3;
/// `[6] IMPLICIT IA5String` in GeneralName.
const URI: u8 = 0x86;

/// The URI SANs of a DER certificate; `None` if it is not a well-formed certificate.
pub fn uri_sans(cert: &[u8]) -> Option<Vec<String>> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    let mut out = vec![];
    // Skip version, serial, signature, issuer, validity, subject, key and the optional unique
    // ids; only the extensions matter.
    while !tbs.is_empty() {
        let (tag, value, rest) = tlv(tbs)?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (mut exts, _) = expect(value, SEQUENCE)?;
        while !exts.is_empty() {
            let (ext, rest) = expect(exts, SEQUENCE)?;
            exts = rest;
            let (oid, mut ext) = expect(ext, OID)?;
            if oid != SAN_OID {
                continue;
            }
            if let Some((_, rest)) = expect(ext, BOOLEAN) {
                ext = rest;
            }
            let (octets, _) = expect(ext, OCTET_STRING)?;
            let (mut names, _) = expect(octets, SEQUENCE)?;
            while !names.is_empty() {
                let (tag, value, rest) = tlv(names)?;
                names = rest;
                if tag == URI {
                    out.push(String::from_utf8(value.to_vec()).ok()?);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        let path = format!("{}/tests/certs/{pem}", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read(path).unwrap();
        let mut certs = pylon_config::pem::parse_certs(std::str::from_utf8(&pem).unwrap()).unwrap();
        certs.remove(0).to_vec()
    }

    #[test]
    fn finds_uri_sans_among_dns_names() {
        assert_eq!(
            uri_sans(&der("backend.pem")).unwrap(),
            vec!["spiffe://cluster.local/ns/app/sa/backend".to_string()]
        );
    }

    #[test]
    fn a_certificate_without_uri_sans_has_none() {
        assert_eq!(uri_sans(&der("example.pem")).unwrap(), Vec::<String>::new());
        // A CA certificate (extensions, no SAN at all).
        assert_eq!(uri_sans(&der("ca.pem")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(uri_sans(b"\x30\x82\xff\xff"), None);
        assert_eq!(uri_sans(b""), None);
        let mut cut = der("backend.pem");
        cut.truncate(cut.len() / 2);
        assert_eq!(uri_sans(&cut), None);
    }
}
