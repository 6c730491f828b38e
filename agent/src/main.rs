fn main() {
    println!("vantage-agent {}", env!("CARGO_PKG_VERSION"));
}
