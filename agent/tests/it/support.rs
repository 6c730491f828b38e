//! The hub the agent's tests run against.

use vantage_testkit::{Agent, Hub, fixtures::Fixtures};

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

/// [`hub`] and one subscribed agent that trusts the fixtures' signed zone and
/// may probe loopback, the fixtures' address.
pub fn hub_and_fixture_agent(fx: &Fixtures) -> (Hub, Agent) {
    let hub = hub();
    let top = format!("trust_anchor = {:?}", fx.trust_anchor);
    let mut agent = Agent::new(&hub, &top, "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    (hub, agent)
}
