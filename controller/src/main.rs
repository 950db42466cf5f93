//! `pylon-controller`: the Gateway API controller.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    anyhow::bail!("pylon-controller: not implemented yet")
}
