//! `vantage-provision`: enrols this node with its hub on first boot.
fn main() {
    println!("vantage-provision {}", env!("CARGO_PKG_VERSION"));
}
