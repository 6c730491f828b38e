# vantage-agent, the node agent (docs/agent.md). Its integration tests
# (agent/tests/, part of `make test-fast`) need the loopback fixtures' packages.
.PHONY: deps-fixtures test-agent bench-agent fixtures-start fixtures-stop

FIXTURES_DIR ?= /tmp/vantage-fixtures

deps-fixtures: ## install the agent's test fixtures (nsd, ldnsutils, nginx-light with Nchan, openssl)
	@bash scripts/deps.sh fixtures

# The workspace tests include the agent's integration tests.
test-fast: deps-fixtures

# No C TLS stack in the tree: deny.toml's bans, checked by `make deny` (part of `make lint`).
test-agent: deps deps-fixtures ## agent: selftest against the fixtures' signed zone
	$(CARGO) build --locked -p vantage-agent
	@dir=$$(mktemp -d); trap 'bash ci/fixtures/stop.sh '$$dir'; rm -rf '$$dir EXIT; \
	  bash ci/fixtures/start.sh $$dir >/dev/null && . $$dir/fixtures.env && \
	  target/debug/vantage-agent selftest --dns $$FIXTURE_DNS --name $$FIXTURE_SECURE_NAME

bench-agent: deps deps-fixtures ## agent: Pi binary sizes, idle RSS and wake-ups against curl (for BENCHMARKS.md)
	$(CARGO) bench --locked -p vantage-agent --bench idle

fixtures-start: deps-fixtures ## start the loopback DNS (signed zones) + HTTP/HTTPS fixtures in FIXTURES_DIR
	@bash ci/fixtures/start.sh $(FIXTURES_DIR)

fixtures-stop: ## stop the fixtures in FIXTURES_DIR
	@bash ci/fixtures/stop.sh $(FIXTURES_DIR)

TEST_TARGETS += test-agent
