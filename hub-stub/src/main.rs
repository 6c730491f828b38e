fn main() {
    println!("vantage-hub {}", env!("CARGO_PKG_VERSION"));
}
