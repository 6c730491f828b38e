# Scale-out: nginx + Nchan fan-out (scale/), the fan-out benchmark (bench/).
.PHONY: deps-scale bench-fanout bench-ingest bench-storm test-nchan
TEST_TARGETS += test-nchan
N ?= 1000
PER_NODE ?= 50

deps-scale: ## install nginx + Nchan, Redis and Mosquitto (apt)
	@bash scripts/deps.sh base scale

bench-fanout: deps-scale ## fan-out benchmark: hub alone vs nginx + Nchan vs Mosquitto (N=1000; make bench-fanout N=10000)
	@bash scale/bench-fanout.sh $(N)

bench-ingest: deps ## result ingest: N nodes post at once vs a plain batched SQLite insert; none lost under SIGKILL (N=1000 PER_NODE=50)
	@bash scripts/bench-ingest.sh $(N) $(PER_NODE)

bench-storm: deps ## reconnect storm: N nodes subscribed, the hub restarted and killed; all back with a job appended while down (N=1000)
	@bash scripts/bench-storm.sh $(N)

test-nchan: deps-scale ## integration test: agent and hub through real nginx + Nchan + Redis with mTLS and CRL
	$(CARGO) test --locked -p vantage-bench --test it -- nchan:: --ignored --nocapture
