# The hub's API contract (docs/hub.md, "API"): the OpenAPI document generated
# from the code, and Schemathesis (PyPI, pinned, in a venv) checking a real
# hub against it with an operator and with a node certificate.
.PHONY: openapi test-contract

SCHEMATHESIS_VERSION ?= 4.32.5
CONTRACT_VENV ?= target/contract-venv

openapi: deps ## rewrite docs/openapi.json from the code (a test fails while it is stale)
	$(CARGO) run -q --locked -p vantage-hub -- openapi > docs/openapi.json

test-contract: deps ## Schemathesis against a real hub on loopback, as operator and as node: no 5xx, every answer as documented (about 30 s)
	@bash scripts/deps.sh contract
	@test -x $(CONTRACT_VENV)/bin/pip || python3 -m venv $(CONTRACT_VENV)
	$(CONTRACT_VENV)/bin/pip install -q 'schemathesis==$(SCHEMATHESIS_VERSION)'
	$(CARGO) build --locked -p vantage-hub -p vantage-cli
	bash ci/contract/run.sh target/debug/vantage-hub target/debug/vantage $(CONTRACT_VENV)/bin/st

TEST_TARGETS += test-contract
