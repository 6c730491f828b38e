//! vantage, the operator and approver command line.
use clap::Parser as _;

fn main() {
    let cli = vantage_cli::cli::Cli::parse();
    if let Err(e) = vantage_cli::cli::run(cli) {
        eprintln!("vantage: {e}");
        std::process::exit(e.exit_code());
    }
}
