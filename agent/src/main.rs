//! `vantage-agent`: the node agent (see the library for the parts).
use std::process::ExitCode;

fn main() -> ExitCode {
    vantage_agent::cli::main()
}
