# Protocol crate: fuzz targets for the event-stream decoder, the signed-job parser,
# the result and enrolment bodies the hub reads, and the mandate revocation list
# nodes read.
.PHONY: fuzz-smoke
TEST_TARGETS += fuzz-smoke

fuzz-smoke: ## run each fuzz target for FUZZ_SECONDS (default 30)
	@bash scripts/fuzz.sh
