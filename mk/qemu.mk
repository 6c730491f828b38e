# QEMU end-to-end test of a freshly flashed node (docs/qemu-test.md).
.PHONY: qemu-test deps-qemu

QEMU_PART ?= all
QEMU_ARGS ?=
QEMU_SYSTEM ?= image

deps-qemu: ## install what qemu-test needs (QEMU system + user emulation, Buildroot's host tools, mmdebstrap, socat, mtools, ...)
	@bash scripts/deps.sh qemu fixtures buildroot

qemu-test: deps-qemu agent ## build the QEMU image and boot it (aarch64) against the real hub, plus the ARMv6 chain under qemu-arm (QEMU_PART=all|qemu|armv6, QEMU_SYSTEM=image|debian, QEMU_ARGS=... for ci/qemu/e2e.py)
	$(CARGO) build --locked -p vantage-hub
	python3 ci/qemu/e2e.py --part $(QEMU_PART) --system $(QEMU_SYSTEM) $(QEMU_ARGS)

TEST_TARGETS += qemu-test
