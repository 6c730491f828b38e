# Protocol crate: fuzz targets for the event-stream decoder and the signed-job parser.
.PHONY: fuzz-smoke
TEST_TARGETS += fuzz-smoke

fuzz-smoke: ## run each fuzz target for FUZZ_SECONDS (default 30)
	@bash scripts/fuzz.sh
