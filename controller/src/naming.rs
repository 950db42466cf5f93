//! Names of the objects Pylon creates for a Gateway, shared by translation (which names the
//! data plane's identity) and the provisioner (which creates the objects).

/// Name of a Gateway's data-plane objects (ServiceAccount, Deployment, Service): a valid DNS
/// label even for long Gateway names (a hash keeps truncated names distinct).
pub fn dataplane_name(gateway: &str) -> String {
    let name = format!("pylon-{gateway}");
    if name.len() <= 63 {
        return name;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = gateway.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!(
        "{}-{:08x}",
        name[..54].trim_end_matches(['-', '.']),
        hash as u32
    )
}
