//! The `vantage-codecheck` command line.

use crate::{imports, long_fns};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Checks of vantage's source tree that clippy does not make.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    check: Check,
}

#[derive(Subcommand)]
enum Check {
    /// Fails listing every function longer than the limit outside test code
    /// (`tests/` directories, `#[cfg(test)]`, the test kit).
    LongFns {
        /// The tree to read.
        #[arg(default_value = ".")]
        root: PathBuf,
        /// The most lines a function may span.
        #[arg(long, default_value_t = long_fns::MAX_LINES)]
        max: usize,
    },
    /// Fails printing any import cycle between the top-level modules of each
    /// library crate (its `src/` directory holding `lib.rs`).
    Cycles {
        /// The crates' `src/` directories.
        #[arg(required = true)]
        src: Vec<PathBuf>,
    },
}

/// Runs the check the arguments name; failure is exit code 1.
pub fn run() -> ExitCode {
    let found = match Args::parse().check {
        Check::LongFns { root, max } => long_fns::find(&root, max).map(|long| {
            for f in &long {
                eprintln!(
                    "{}:{}: {} is {} lines long (at most {max} outside tests)",
                    f.file.display(),
                    f.line,
                    f.name,
                    f.lines
                );
            }
            long.len()
        }),
        Check::Cycles { src } => cycles(&src),
    };
    match found {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vantage-codecheck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cycles(srcs: &[PathBuf]) -> Result<usize, crate::Error> {
    let mut n = 0;
    for src in srcs {
        for cycle in imports::crate_graph(src)?.cycles() {
            eprintln!(
                "{}: import cycle: {}",
                src.display(),
                imports::describe(&cycle)
            );
            n += 1;
        }
    }
    Ok(n)
}
