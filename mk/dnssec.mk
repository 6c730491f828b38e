# DNSSEC differential test (issue #15): the agent's `dns` verdicts against
# delv and unbound over a private signed world on loopback
# (ci/fixtures/dnssec-world.sh: Knot DNS authoritative, unbound validating).
.PHONY: deps-dnssec test-dnssec dnssec-world-start dnssec-world-stop

DNSSEC_WORLD_DIR ?= /tmp/vantage-dnssec-world

deps-dnssec: ## install the DNSSEC world's tools (knot, unbound, delv, dnssec-signzone, ldns)
	@bash scripts/deps.sh dnssec

test-dnssec: deps deps-dnssec ## agent: DNSSEC verdicts equal delv's and unbound's (table + timing medians)
	$(CARGO) test --locked -p vantage-agent --test it -- dnssec_differential:: --ignored --nocapture

dnssec-world-start: deps-dnssec ## start the signed DNS world in DNSSEC_WORLD_DIR (for manual probing)
	@bash ci/fixtures/dnssec-world.sh start $(DNSSEC_WORLD_DIR)

dnssec-world-stop: ## stop the signed DNS world in DNSSEC_WORLD_DIR
	@bash ci/fixtures/dnssec-world.sh stop $(DNSSEC_WORLD_DIR)

TEST_TARGETS += test-dnssec
