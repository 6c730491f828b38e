//! The hub the agent's tests run against.

use vantage_testkit::Hub;

/// A test hub that also takes unsigned payloads (`--unsafe-raw-publish`), so
/// tests can put what a hostile or broken publisher would on a node's channels.
pub fn hub() -> Hub {
    hub_with(&[])
}

/// [`hub`] with extra `serve` options.
pub fn hub_with(serve_args: &[&str]) -> Hub {
    let mut args = vec!["--unsafe-raw-publish"];
    args.extend_from_slice(serve_args);
    Hub::start(&args)
}
