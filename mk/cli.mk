# vantage: the operator and approver CLI (cli/).
.PHONY: cli test-cli

cli: deps console ## build the operator CLI (release) with the console's map: target/release/vantage
	$(CARGO) build --release --locked -p vantage-cli

test-cli: deps ## CLI tests: unit, property, and the real vantage-hub on loopback and a real vantage-agent, driven by the vantage binary (about 10 s after the build)
	@# The test kit builds vantage-hub and vantage-agent (one package at a time,
	@# the feature set they ship with) before the first test that runs them.
	$(CARGO) test --locked -p vantage-cli

