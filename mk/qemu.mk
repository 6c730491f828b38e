# QEMU end-to-end test of a freshly flashed node (README "QEMU end-to-end test").
.PHONY: qemu-test deps-qemu

QEMU_PART ?= all
QEMU_ARGS ?=

deps-qemu: ## install what qemu-test needs (QEMU system + user emulation, mmdebstrap, socat, mtools, ...)
	@bash scripts/deps.sh qemu fixtures

qemu-test: deps-qemu agent ## boot the node image in QEMU (aarch64) against the real hub, plus the ARMv6 chain under qemu-arm (QEMU_PART=all|qemu|armv6, QEMU_ARGS=... for ci/qemu/e2e.py)
	$(CARGO) build --locked -p vantage-hub
	python3 ci/qemu/e2e.py --part $(QEMU_PART) $(QEMU_ARGS)

TEST_TARGETS += qemu-test
