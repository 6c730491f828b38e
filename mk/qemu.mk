# QEMU end-to-end test of a freshly flashed node (docs/qemu-test.md).
.PHONY: qemu-test deps-qemu agent-releases

QEMU_PART ?= all
QEMU_ARGS ?=
QEMU_SYSTEM ?= image

deps-qemu: ## install what qemu-test needs (QEMU system + user emulation, Buildroot's host tools, mmdebstrap, socat, mtools, ...)
	@bash scripts/deps.sh qemu fixtures buildroot

agent-releases: agent ## the agent builds qemu-test installs as releases (0.2.0, and 0.2.1 with fail-after-start) for both Pi targets in out/bin-releases/ (cached by content)
	@bash scripts/cross/releases.sh

qemu-test: deps-qemu agent agent-releases ## build the QEMU image and boot it (aarch64) against the real hub, plus the ARMv6 chain under qemu-arm (QEMU_PART=all|qemu|armv6, QEMU_SYSTEM=image|debian, QEMU_ARGS=... for ci/qemu/e2e.py)
	$(CARGO) build --locked -p vantage-hub
	python3 ci/qemu/e2e.py --part $(QEMU_PART) --system $(QEMU_SYSTEM) $(QEMU_ARGS)

TEST_TARGETS += qemu-test
