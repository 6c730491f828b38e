#!/usr/bin/env bash
# Post-build script of every vantage board.
# Buildroot calls it as: post-build.sh TARGET_DIR BOARD
# with BOARD from BR2_ROOTFS_POST_SCRIPT_ARGS (rpi0w, rpi3, rpi4, rpi5, qemu_aarch64,
# armel_rootfs).
# Hub settings come from make image (image/build-image.sh), which writes them
# to $BASE_DIR/vantage-settings/: hub-url (post-image.sh puts it into the
# volunteer's example file), ca.pem, policy.json, version.
set -euo pipefail

target=${1:?usage: post-build.sh TARGET_DIR BOARD}
board=${2:?usage: post-build.sh TARGET_DIR BOARD}
settings=${VANTAGE_SETTINGS:-${BASE_DIR:?BASE_DIR is set by Buildroot}/vantage-settings}

# Mount points on the read-only root.
install -d -m 0755 "$target/boot/firmware" "$target/var/lib/vantage"

# The network this image belongs to.
for f in hub-url ca.pem policy.json; do
  [ -s "$settings/$f" ] || { echo "post-build: $settings/$f missing; run make image with HUB_URL, NETWORK_CA and POLICY" >&2; exit 1; }
done
install -D -m 0644 "$settings/ca.pem" "$target/etc/vantage/ca.pem"
install -D -m 0644 "$settings/policy.json" "$target/etc/vantage/policy.json"

# Which image this is (shown by hostnamectl, read by support).
version=$(cat "$settings/version" 2>/dev/null || echo unknown)
sed -i '/^VARIANT_ID=\|^IMAGE_ID=\|^IMAGE_VERSION=/d' "$target/usr/lib/os-release"
printf 'VARIANT_ID=%s\nIMAGE_ID=vantage-%s\nIMAGE_VERSION=%s\n' "$board" "$board" "$version" \
  >> "$target/usr/lib/os-release"
