#!/usr/bin/env bash
# make card-check BOARD=rpi3|rpi4|rpi5|rpi0w [IMG=...] [HUB_URL=...]: checks a Pi
# card built from package registries (make image BOARD=... SOURCES=registries,
# which runs this on every card it makes) without booting it: what QEMU cannot
# boot (the Pi 5) is checked as far as files can tell, against the card's
# directory image/buildroot/board/vantage/debian-kernel/<card>/:
#  - the layout every vantage card has (image/card-lib.sh): three partitions,
#    labels, the data partition's owner, the volunteer's example with the hub;
#  - the boot partition: the kernel config.txt names, initrd.img, the device
#    trees and firmware files of card.conf, config.txt and cmdline.txt as in
#    the tree;
#  - each device tree is one (fdtget) for its SoC (bcm2712-... : brcm,bcm2712),
#    and the initramfs (or the kernel) has the driver of an SD controller it enables;
#  - the kernel: an arm64 Image (magic, little-endian, 4K pages) whose release
#    is the modules' directory, or an ARM zImage (magic);
#  - the initramfs and the root file system: every module of modules.initramfs
#    and modules.rootfs with its dependencies, built for that release (vermagic);
#  - the root file system: labelled rootfs (cmdline.txt's root=LABEL=rootfs),
#    Buildroot's os-release naming the board, the Wi-Fi chips' firmware.
#   IMG      the card (default out/image/BOARD/sdcard.img)
#   HUB_URL  the hub the card was built for (default: the one its example names)
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: make card-check BOARD=rpi3|rpi4|rpi5|rpi0w [IMG=out/image/BOARD/sdcard.img] [HUB_URL=https://...]" >&2; exit 64; }
board=${BOARD:-}
[ -n "$board" ] || usage
DK=image/buildroot/board/vantage/debian-kernel
card=$(cd "$DK" && grep -lE "^PI_BOARDS=\"(.* )?$board( .*)?\"$" ./*/card.conf | cut -d/ -f2) \
  || { echo "error: no card from registries for board '$board' ($DK/*/card.conf)" >&2; usage; }
dir=$DK/$card
bash scripts/deps.sh image
img=${IMG:-out/image/$board/sdcard.img}
[ -f "$img" ] || { echo "error: $img missing: make image BOARD=$board SOURCES=registries HUB_URL=... first" >&2; exit 1; }
# shellcheck source=image/buildroot/board/vantage/debian-kernel/rpi5/card.conf
. "$dir/card.conf"
# shellcheck source=image/card-lib.sh
. image/card-lib.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
echo "== the $board card $img (debian-kernel/$card)"

if [ -z "${HUB_URL:-}" ]; then
  HUB_URL=$(mtype -i "$img@@$(sfdisk --json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"] * 512)')" \
    ::/vantage.toml.example | sed -n 's/^hub = "\(.*\)"$/\1/p')
  echo "     (no HUB_URL given: the card's hub is ${HUB_URL:-none})"
fi
dtbs=()
for d in $DTBS; do dtbs+=("$d.dtb"); done
# shellcheck disable=SC2086 # FIRMWARE_FILES is a list
card_layout "$img" "$work" "$HUB_URL" config.txt cmdline.txt vantage.toml.example initrd.img "$KERNEL_FILE" \
  bootcode.bin start.elf fixup.dat $FIRMWARE_FILES "${dtbs[@]}"
echo "     boot partition: $(mdir -i "$work/boot.vfat" ::/ | grep -o '[0-9 ]* bytes free' | sed 's/^ *//') of $(($(stat -c %s "$work/boot.vfat") / 1048576)) MiB"
for f in config.txt cmdline.txt initrd.img "$KERNEL_FILE" "${dtbs[@]}"; do
  mcopy -n -i "$work/boot.vfat" "::$f" "$work/$f" 2>/dev/null || : > "$work/$f"
done
for f in config.txt cmdline.txt; do
  check "boot partition's $f is $dir/$f" cmp -s "$dir/$f" "$work/$f"
done

echo "== device trees and kernel"
for d in "${dtbs[@]}"; do
  soc=brcm,${d%%-*}
  check "$d: a device tree for $soc ($(fdtget "$work/$d" / compatible 2>/dev/null || echo 'not a device tree'))" \
    bash -c "fdtget '$work/$d' / compatible | tr ' ' '\n' | grep -qxF '$soc'"
done
# ls_root DIR: the names in DIR of the root file system (debugfs's parseable
# listing: /inode/mode/uid/gid/name/size/).
ls_root() { debugfs -R "ls -p $1" "$work/root.ext4" 2>/dev/null | awk -F/ 'NF > 6 && $6 != "." && $6 != ".." { print $6 }'; }
kver=$(ls_root /usr/lib/modules | head -1)
check "root file system has one kernel's modules (${kver:-none})" test "$(ls_root /usr/lib/modules | wc -l)" -eq 1
if [ "$DEB_ARCH" = arm64 ]; then
  # The arm64 boot header (Documentation/arch/arm64/booting.rst): magic
  # "ARM\x64" at 56, flags at 24: bit 0 big-endian, bits 1-2 page size (1: 4K).
  check "$KERNEL_FILE: arm64 Image, little-endian, 4K pages" python3 -c '
import struct, sys
h = open(sys.argv[1], "rb").read(64)
flags, = struct.unpack_from("<Q", h, 24)
assert h[56:60] == b"ARM\x64" and flags & 1 == 0 and (flags >> 1) & 3 == 1, (h[56:60], flags)
' "$work/$KERNEL_FILE"
  release=$(grep -aoE -m1 'Linux version [^ ]+' "$work/$KERNEL_FILE" | head -1 | cut -d' ' -f3)
  check "$KERNEL_FILE: release ${release:-?} = the modules' $kver" test "$release" = "$kver"
else
  check "$KERNEL_FILE: ARM zImage (magic 0x016f2818)" python3 -c '
import struct, sys
assert struct.unpack_from("<I", open(sys.argv[1], "rb").read(64), 36)[0] == 0x016f2818
' "$work/$KERNEL_FILE"
fi

# module_in TREE NAME: module NAME and its dependencies are in TREE's modules of $kver.
module_in() {
  local deps f
  deps=$(modprobe -d "$1/usr" -S "$kver" --show-depends "$2" 2>&1) || { echo "     $deps"; return 1; }
  while read -r f; do [ -f "$f" ] || return 1; done < <(awk '$1 == "insmod" { print $2 }' <<<"$deps")
}
# modules_check TREE LIST: every module LIST names is in TREE/usr/lib/modules/$kver
# with its dependencies, and every module there was built for $kver.
modules_check() {
  local tree=$1 list=$2 name f bad_vermagic
  while read -r name; do
    check "$(basename "$list"): $name with its dependencies" module_in "$tree" "$name"
  done < <(grep -v -e '^#' -e '^$' "$list")
  bad_vermagic=$(find "$tree/usr/lib/modules/$kver" -name '*.ko' | while read -r f; do
    [ "$(modinfo -F vermagic "$f" | cut -d' ' -f1)" = "$kver" ] || echo "${f##*/}"; done)
  check "$(basename "$list"): all $(find "$tree/usr/lib/modules/$kver" -name '*.ko' | wc -l) modules built for $kver${bad_vermagic:+ (not: $bad_vermagic)}" \
    test -z "$bad_vermagic"
}

echo "== initramfs"
mkdir "$work/ir"
(cd "$work/ir" && zcat "$work/initrd.img" | cpio -id --quiet 2>/dev/null) || true
check "initrd.img: init and a static busybox" bash -c \
  "test -x '$work/ir/init' && file -L '$work/ir/bin/busybox' | grep -q 'statically linked'"
check "initrd.img: /etc/modules is modules.initramfs" \
  diff <(grep -v -e '^#' -e '^$' "$dir/modules.initramfs") "$work/ir/etc/modules"
modules_check "$work/ir" "$dir/modules.initramfs"

# The SD controllers a device tree enables (mmc@... nodes), as modaliases.
sd_modaliases() {
  dtc -q -I dtb -O dts "$1" | python3 -c '
import re, sys
stack = []
for line in sys.stdin:
    l = line.strip()
    if l.endswith("{"):
        stack.append({"name": l[:-1].strip().split(":")[-1].strip(), "compatible": [], "status": "okay"})
    elif l == "};" and stack:
        n = stack.pop()
        if n["name"].startswith("mmc@") and n["compatible"] and n["status"] == "okay":
            print("of:N%sT(null)%s" % (n["name"].split("@")[0], "".join("C" + c for c in n["compatible"])))
    elif stack and (m := re.match(r"(compatible|status) = (.*);$", l)):
        v = re.findall(r"\"([^\"]*)\"", m.group(2).replace("\\0", "\" \""))
        stack[-1][m.group(1)] = v if m.group(1) == "compatible" else v[0]
'
}
# The kernel's own code for looking into: an arm64 Image as it is, a zImage's
# compressed payload (xz or gzip; the first stream that unpacks, the
# decompressor's code may contain the magic bytes too).
python3 -c '
import lzma, sys, zlib
d = open(sys.argv[1], "rb").read()
out = d
for magic, unpack in ((b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
                      (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(31).decompress(b))):
    i = d.find(magic) if d[36:40] == b"\x18\x28\x6f\x01" else -1
    while i >= 0 and out is d:
        try:
            out = unpack(d[i:])
        except (lzma.LZMAError, zlib.error):
            i = d.find(magic, i + 1)
open(sys.argv[2], "wb").write(out)
' "$work/$KERNEL_FILE" "$work/kernel.bin"
# sd_driver_in_initramfs DTB: the initramfs has the driver of one of the SD
# controllers DTB enables, or the kernel has it built in (its match table holds
# the compatible string; built-in drivers have no aliases to resolve).
sd_driver_in_initramfs() {
  local alias mod compat
  for alias in $(sd_modaliases "$1"); do
    mod=$(modprobe -d "$work/ir/usr" -S "$kver" -R "$alias" 2>/dev/null | head -1) && [ -n "$mod" ] \
      && { echo "     ${1##*/}: $alias -> $mod"; return 0; }
    compat=${alias#*C}
    compat=${compat%%C*}
    grep -qaF "$compat" "$work/kernel.bin" && { echo "     ${1##*/}: $compat built into $KERNEL_FILE"; return 0; }
  done
  return 1
}
for d in "${dtbs[@]}"; do
  check "$d: the initramfs drives one of its SD controllers" sd_driver_in_initramfs "$work/$d"
done

echo "== root file system"
check "labelled rootfs" bash -c "dumpe2fs -h '$work/root.ext4' 2>/dev/null | grep -qE '^Filesystem volume name: +rootfs\$'"
debugfs -R "cat /usr/lib/os-release" "$work/root.ext4" 2>/dev/null > "$work/os-release"
check "os-release: Buildroot's ($(sed -n 's/^PRETTY_NAME=//p' "$work/os-release"))" grep -qx 'NAME=Buildroot' "$work/os-release"
check "os-release names the board" grep -qx "IMAGE_ID=vantage-$board" "$work/os-release"
mkdir -p "$work/root/usr/lib"
debugfs -R "rdump /usr/lib/modules $work/root/usr/lib" "$work/root.ext4" >/dev/null 2>&1
modules_check "$work/root" "$dir/modules.rootfs"
ls_root /usr/lib/firmware/brcm > "$work/brcm"
# matches GLOB FILE: a line of FILE matches the shell pattern GLOB.
# shellcheck disable=SC2053 # $1 is a pattern
matches() { local f; while read -r f; do [[ $f == $1 ]] && return 0; done < "$2"; return 1; }
for g in $WIFI_FIRMWARE; do
  check "Wi-Fi firmware $g" matches "$g" "$work/brcm"
done

echo "card-check $board: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
