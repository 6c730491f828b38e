fn main() {
    println!("vantage-provision {}", env!("CARGO_PKG_VERSION"));
}
