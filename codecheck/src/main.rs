//! `vantage-codecheck`: see the library.
fn main() -> std::process::ExitCode {
    vantage_codecheck::cli::run()
}
