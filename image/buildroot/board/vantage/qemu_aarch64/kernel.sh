#!/usr/bin/env bash
# Post-image step of vantage_qemu_aarch64, before the shared post-image.sh: this
# board builds no kernel (QEMU boots Debian's arm64 kernel, the one make qemu-test
# fetches, with -kernel). So that the card is laid out exactly like a Pi 3's,
# that kernel also goes onto the boot partition as the Image config.txt names.
# Buildroot calls it as: kernel.sh BINARIES_DIR BOARD; VANTAGE_KERNEL names the kernel.
set -euo pipefail
binaries=${1:?usage: kernel.sh BINARIES_DIR BOARD}
kernel=${VANTAGE_KERNEL:?VANTAGE_KERNEL must name the arm64 kernel for the card (make image BOARD=qemu_aarch64 KERNEL=...)}
[ -s "$kernel" ] || { echo "kernel.sh: $kernel missing" >&2; exit 1; }
cp "$kernel" "$binaries/Image"
