//! `pylon-dataplane`: serves the traffic of one Gateway.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    anyhow::bail!("pylon-dataplane: not implemented yet")
}
