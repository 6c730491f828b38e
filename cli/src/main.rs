fn main() {
    println!("vantage {}", env!("CARGO_PKG_VERSION"));
}
