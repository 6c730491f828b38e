# Scale-out: nginx + Nchan fan-out (scale/), the fan-out benchmark (bench/).
.PHONY: deps-scale bench-fanout test-nchan
TEST_TARGETS += test-nchan
N ?= 1000

deps-scale: ## install nginx + Nchan, Redis and Mosquitto (apt)
	@bash scripts/deps.sh base scale

bench-fanout: deps-scale ## fan-out benchmark: hub alone vs nginx + Nchan vs Mosquitto (N=1000; make bench-fanout N=10000)
	@bash scale/bench-fanout.sh $(N)

test-nchan: deps-scale ## integration test: agent and hub through real nginx + Nchan + Redis with mTLS and CRL
	$(CARGO) test --locked -p vantage-bench --test it -- nchan:: --ignored --nocapture
