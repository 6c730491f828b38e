# vantage-hub: the master server (hub-stub/).
.PHONY: hub test-hub hub-dev
HUB_DEV_DIR ?= /tmp/vantage-hub-dev

hub: deps ## build the hub (release): target/release/vantage-hub
	$(CARGO) build --release --locked -p vantage-hub

test-hub: deps ## hub tests: unit, property, and the real hub on loopback with TLS (about 10 s after the build)
	$(CARGO) test --locked -p vantage-hub

hub-dev: deps ## run a throw-away hub on 127.0.0.1:8443 (data in /tmp/vantage-hub-dev, operator credential in its op/)
	@test -e $(HUB_DEV_DIR)/ca.key || $(CARGO) run -q -p vantage-hub -- --data-dir $(HUB_DEV_DIR) init --name localhost --name 127.0.0.1
	@test -e $(HUB_DEV_DIR)/op/dev.crt || $(CARGO) run -q -p vantage-hub -- --data-dir $(HUB_DEV_DIR) operator issue dev --out $(HUB_DEV_DIR)/op
	$(CARGO) run -q -p vantage-hub -- --data-dir $(HUB_DEV_DIR) serve --listen 127.0.0.1:8443

.PHONY: bench-hostile
bench-hostile: deps ## flood benchmark: operator latency (p50, max) and hub RSS under each attack from many loopback addresses (about 1 min)
	@bash scripts/bench-hostile.sh
