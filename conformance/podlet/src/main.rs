//! `pylon-podlet`: the local cluster's node agent.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    anyhow::bail!("pylon-podlet: not implemented yet")
}
