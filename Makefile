# vantage: top-level build. `make demo` runs the main job, `make test` every test.
# Each area keeps its targets in mk/<area>.mk and adds its test target to TEST_TARGETS.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# scripts/deps.sh installs rustup into ~/.cargo/bin on a fresh machine; its
# PATH change dies with that script, so every recipe gets the directory here
# and the first `make demo` or `make test` runs to the end in one go.
export PATH := $(HOME)/.cargo/bin:$(PATH)
TEST_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: help deps test test-fast lint
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## install build prerequisites (apt packages, pinned Rust toolchain); idempotent
	@bash scripts/deps.sh base

lint: deps ## rustfmt, clippy (warnings are errors), no function over 80 lines, no import cycles in the hub or the agent
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) run -q --locked -p vantage-codecheck -- long-fns .
	$(CARGO) run -q --locked -p vantage-codecheck -- cycles hub-stub/src agent/src

test-fast: deps ## unit, property and integration tests of the workspace (the quick loop)
	@bash scripts/deps.sh base fixtures
	$(CARGO) test --workspace --locked

test: lint test-fast $(TEST_TARGETS) ## everything CI runs
	@echo "make test: all passed"
