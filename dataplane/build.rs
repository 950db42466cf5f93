//! Relinks the data plane when its hot-code list changes: release builds lay out .text from it
//! (scripts/link-hot-first.sh), and Cargo does not otherwise know the linker reads it.
fn main() {
    println!("cargo:rerun-if-changed=hot-code.txt");
}
