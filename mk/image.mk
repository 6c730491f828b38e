# Raspberry Pi binaries and SD-card images (docs/images.md).
.PHONY: agent agent-check image image-check card-check image-cold-check pi-boot-check deps-cross deps-image deps-buildroot

CROSS ?= cargo
BOARD ?=
SOURCES ?=
KERNEL ?=

deps-cross: ## install the cross link drivers, QEMU user emulation and the Rust Pi targets
	@bash scripts/deps.sh base cross

deps-image: ## install what image-check needs (shellcheck, systemd-analyze, genimage)
	@bash scripts/deps.sh image

deps-buildroot: ## install Buildroot's host requirements (make image)
	@bash scripts/deps.sh buildroot

agent: ## static agent + provisioning binaries for both Pi targets in out/bin/<target>/ (CROSS=cross for cross-rs)
	@CROSS=$(CROSS) bash scripts/cross/build.sh

agent-check: agent ## checks of make agent's output: static, architecture, QEMU self-test on Pi CPUs, size budget
	@bash scripts/cross/check.sh

image: ## SD-card image (Pi cards from registries are then checked by card-check): make image BOARD=rpi0w|rpi3|rpi4|rpi5|qemu_aarch64 HUB_URL=https://... NETWORK_CA=ca.pem POLICY=policy.json [SOURCES=upstream|registries] [KERNEL=...]
	@BOARD=$(BOARD) HUB_URL=$(HUB_URL) NETWORK_CA=$(NETWORK_CA) POLICY=$(POLICY) SOURCES=$(SOURCES) KERNEL=$(KERNEL) bash image/build-image.sh

card-check: ## check a Pi card built from registries without booting it (layout, kernel, device trees, initramfs, modules): BOARD=rpi3|rpi4|rpi5|rpi0w [IMG=... HUB_URL=...]
	@BOARD=$(BOARD) IMG=$(IMG) HUB_URL=$(HUB_URL) bash image/card-check.sh

image-cold-check: deps-buildroot ## the QEMU image from an empty cache (sources, toolchain, Buildroot): time and disk of a cold build
	@bash image/cold-check.sh

pi-boot-check: ## boot a Pi card from registries (built with test settings if missing) on QEMU to the login prompt: the Pi 3/4 card on -M raspi3b, or BOARD=rpi0w the Pi Zero/1 card on -M raspi0 [IMG=... TIMEOUT=900]
	@BOARD=$(BOARD) IMG=$(IMG) TIMEOUT=$(TIMEOUT) bash image/pi-boot-check.sh

image-check: deps-image agent ## validate the Buildroot tree and the overlay without Buildroot (paths, shellcheck, units, genimage)
	@bash image/check-tree.sh

TEST_TARGETS += agent-check image-check pi-boot-check
