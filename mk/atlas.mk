# Results in RIPE Atlas format (ARCHITECTURE.md, "Results in RIPE Atlas
# format"): a real hub and agent on loopback produce every exported probe kind,
# ok and failing, and RIPE's own parser (ripe.atlas.sagan, PyPI, pinned) reads
# the export; its figures are compared with the native results.
.PHONY: test-atlas

SAGAN_VERSION ?= 2.0.1
ATLAS_PYTEST_VERSION ?= 9.2.0
ATLAS_VENV ?= target/atlas-venv

test-atlas: deps deps-fixtures ## Atlas export read by ripe.atlas.sagan (pinned, in a venv) and compared with native results
	@bash scripts/deps.sh atlas
	@test -x $(ATLAS_VENV)/bin/pip || python3 -m venv $(ATLAS_VENV)
	$(ATLAS_VENV)/bin/pip install -q 'ripe.atlas.sagan==$(SAGAN_VERSION)' 'pytest==$(ATLAS_PYTEST_VERSION)'
	@# The test kit builds the hub too; built here, that build is not in the test's time.
	$(CARGO) build --locked -p vantage-hub
	@out=$$(mktemp); trap 'rm -f '$$out EXIT; \
	  VANTAGE_ATLAS_OUT=$$out $(CARGO) test --locked -p vantage-agent --test it -- atlas:: && \
	  VANTAGE_ATLAS_OUT=$$out $(ATLAS_VENV)/bin/python -m pytest -q -p no:cacheprovider ci/atlas/test_sagan.py

TEST_TARGETS += test-atlas
