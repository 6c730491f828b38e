#!/usr/bin/env bash
# Post-image script of every vantage board: assembles sdcard.img with genimage
# from genimage.cfg.in and writes its checksum.
# Buildroot calls it as: post-image.sh BINARIES_DIR BOARD
# Environment (from Buildroot): BUILD_DIR, BASE_DIR. Optional: DATA_SIZE
# (initial data partition size; grown on first boot), default 64M.
# The hub URL given to make image ($BASE_DIR/vantage-settings/hub-url) becomes
# the hub line of the volunteer's example file, so a copy of it is complete.
set -euo pipefail

board_dir=$(dirname "$(readlink -f "$0")")
binaries=${1:?usage: post-image.sh BINARIES_DIR BOARD}
board=${2:?usage: post-image.sh BINARIES_DIR BOARD}
[ -d "$board_dir/$board" ] || { echo "post-image: unknown board '$board'" >&2; exit 1; }
data_size=${DATA_SIZE:-64M}
cfg="$binaries/genimage.cfg"
tmp="${BUILD_DIR:?BUILD_DIR is set by Buildroot}/genimage.tmp"

example="$binaries/rpi-firmware/vantage.toml.example"
hub_url=$(cat "${VANTAGE_SETTINGS:-${BASE_DIR:?BASE_DIR is set by Buildroot}/vantage-settings}/hub-url")
[ -f "$example" ] || { echo "post-image: $example missing (BR2_PACKAGE_RPI_FIRMWARE_EXTRA_FILES)" >&2; exit 1; }
grep -q '^hub = ' "$example" || { echo "post-image: no 'hub = ' line in $example" >&2; exit 1; }
sed -i "s|^hub = .*|hub = \"${hub_url}\"|" "$example"

# Everything rpi-firmware put in rpi-firmware/ (firmware, config.txt,
# cmdline.txt, overlays, vantage.toml.example), the DTBs and the kernel.
files=()
for f in "$binaries"/*.dtb "$binaries"/rpi-firmware/*; do
  [ -e "$f" ] && files+=("${f#"$binaries"/}")
done
kernel=$(sed -n 's/^kernel=//p' "$binaries/rpi-firmware/config.txt")
[ -e "$binaries/$kernel" ] || { echo "post-image: kernel $kernel named in config.txt is missing" >&2; exit 1; }
files+=("$kernel")
boot_files=$(printf '\\t\\t\\t"%s",\\n' "${files[@]}")
sed -e "s|#BOOT_FILES#|${boot_files}|" -e "s|#DATA_SIZE#|${data_size}|" \
  "$board_dir/genimage.cfg.in" > "$cfg"

# Buildroot's systemd package makes /boot mode 0700 (SYSTEMD_PERMISSIONS), applied
# when rootfs.ext4 is made, after post-build.sh. The boot partition is mounted
# below it at /boot/firmware and read by the vantage user, who must be able to
# pass through /boot: 0755, as on any Debian or Raspberry Pi OS system.
if debugfs -R "stat /boot" "$binaries/rootfs.ext4" 2>/dev/null | grep -q 'Type: directory'; then
  debugfs -w -R "sif /boot mode 040755" "$binaries/rootfs.ext4" >/dev/null 2>&1
  debugfs -R "stat /boot" "$binaries/rootfs.ext4" 2>/dev/null | grep -q 'Mode:  0755' \
    || { echo "post-image: could not make /boot 0755 in rootfs.ext4" >&2; exit 1; }
fi

# An empty root path: the root file system is already rootfs.ext4.
rootpath=$(mktemp -d)
trap 'rm -rf "$rootpath"' EXIT
rm -rf "$tmp"
genimage --rootpath "$rootpath" --tmppath "$tmp" \
  --inputpath "$binaries" --outputpath "$binaries" --config "$cfg"

(cd "$binaries" && sha256sum sdcard.img > sdcard.img.sha256)
echo "post-image: $binaries/sdcard.img ($board), $(cut -d' ' -f1 "$binaries/sdcard.img.sha256")"
