#!/usr/bin/env bash
# A Pi card of make image SOURCES=registries: the root file system Buildroot
# built for the card's architecture (the Pi board without the Pi kernel tree and
# Wi-Fi firmware, which no registry serves) plus what the Pi needs from Debian's
# binary packages. Everything that differs between the cards is in a directory
# per card beside this script:
#   arm64/  BOARD=rpi3|rpi4 on qemu_aarch64's root file system (Pi 3, Zero 2 W, 4, 400)
#   armel/  BOARD=rpi0w on armel_rootfs's root file system (Pi Zero, Zero W, 1)
#   rpi5/   BOARD=rpi5 on qemu_aarch64's root file system (Pi 5 B), Debian 13's backports kernel
# each with sources.tsv (the pinned packages), card.conf (root file system, Debian
# architecture, kernel name, device trees, firmware files), config.txt, cmdline.txt,
# modules.initramfs, modules.rootfs.
#   boot partition  Debian's kernel, its mainline Pi device trees, an initramfs
#                   (static busybox + the modules needed before root, e.g. ext4),
#                   extra firmware files, config.txt/cmdline.txt;
#   root partition  the kernel's modules for Pi hardware (modules.rootfs) and the
#                   Wi-Fi chips' firmware, written into a copy of rootfs.ext4;
#                   os-release names the board.
# The card is laid out by the shared post-image.sh, like every board's.
#   assemble.sh CARD IMAGES_DIR BOARD WORK_DIR
# CARD: arm64, armel or rpi5; IMAGES_DIR: Buildroot's images/ of card.conf's
# ROOTFS_BOARD output (left unchanged); the card ends up in WORK_DIR/images/sdcard.img.
# Environment: VANTAGE_STORE (the content store fetch-debs.sh filled),
# VANTAGE_SETTINGS (the hub settings post-image.sh reads), PATH with genimage.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
usage="usage: assemble.sh CARD IMAGES_DIR BOARD WORK_DIR"
card=${1:?$usage}
images=${2:?$usage}
board=${3:?$usage}
work=${4:?$usage}
here=$top/$card
store=${VANTAGE_STORE:?VANTAGE_STORE must name the store fetch-debs.sh filled}
: "${VANTAGE_SETTINGS:?VANTAGE_SETTINGS must name the hub settings directory}"
die() { echo "assemble: $*" >&2; exit 1; }
[ -f "$here/card.conf" ] || die "no card '$card' ($here/card.conf)"
# shellcheck source-path=SCRIPTDIR source=arm64/card.conf
. "$here/card.conf"
for f in rootfs.ext4 rpi-firmware/bootcode.bin rpi-firmware/start.elf rpi-firmware/fixup.dat rpi-firmware/vantage.toml.example; do
  [ -e "$images/$f" ] || die "$images/$f missing: not a vantage_${ROOTFS_BOARD} output"
done

rm -rf "$work"
mkdir -p "$work/deb" "$work/images/rpi-firmware" "$work/build" "$work/rootfs" "$work/initramfs"
bin=$work/images

# The pinned packages, unpacked side by side (the store has them by hash).
while IFS=$'\t' read -r _pkg _use file sha _rest; do
  [ -f "$store/$sha" ] || die "$file ($sha) is not in $store: run fetch-debs.sh first"
  dpkg-deb -x "$store/$sha" "$work/deb"
done < <(grep -v '^#' "$here/sources.tsv")
deb=$work/deb
# The kernel's modules: in /lib in Debian 12's packages, /usr/lib in Debian 13's (merged /usr).
kbase=$deb
[ -d "$deb/usr/lib/modules" ] && kbase=$deb/usr
kvers=("$kbase"/lib/modules/*)
{ [ ${#kvers[@]} -eq 1 ] && [ -d "${kvers[0]}" ]; } || die "expected one kernel in $kbase/lib/modules, found: ${kvers[*]}"
kver=$(basename "${kvers[0]}")
depmod -b "$kbase" "$kver"

# Module files (relative to lib/modules/KVER) for the names in a list, with
# their dependencies, in load order.
modules_of() {
  local name f
  grep -v -e '^#' -e '^$' "$1" | while read -r name; do
    modprobe -d "$kbase" -S "$kver" --show-depends "$name" >"$work/dep" 2>&1 \
      || die "kernel $kver has no module $name ($(cat "$work/dep"))"
    awk '$1 == "insmod" { print $2 }' "$work/dep"
  done | while read -r f; do echo "${f#"$kbase/lib/modules/$kver/"}"; done | awk '!seen[$0]++'
}
# Copies the modules of list $1 into tree $2 (as usr/lib/modules, the merged-usr
# path of Buildroot's root) with the kernel's module lists, and indexes them.
# Compressed modules (Debian 13's are .ko.xz) are stored uncompressed, so that
# neither busybox's modprobe nor the root file system's kmod needs xz support.
install_modules() {
  local list=$1 tree=$2 rel dst
  modules_of "$list" > "$work/mods"
  while read -r rel; do
    dst=$tree/usr/lib/modules/$kver/${rel%.xz}
    install -d "$(dirname "$dst")"
    case $rel in
      *.xz) xz -dc "$kbase/lib/modules/$kver/$rel" > "$dst"; chmod 0644 "$dst" ;;
      *) install -m 0644 "$kbase/lib/modules/$kver/$rel" "$dst" ;;
    esac
  done < "$work/mods"
  for f in modules.order modules.builtin modules.builtin.modinfo; do
    cp "$kbase/lib/modules/$kver/$f" "$tree/usr/lib/modules/$kver/"
  done
  depmod -b "$tree/usr" "$kver"
  echo "assemble: $(wc -l < "$work/mods") modules of $kver for $(basename "$list")"
}

# Root file system additions: modules, then the Wi-Fi firmware of the boards'
# chips (card.conf) with their board-specific NVRAM files, from
# firmware-brcm80211 and raspi-firmware (generic NVRAM files).
install_modules "$here/modules.rootfs" "$work/rootfs"
install -d "$work/rootfs/usr/lib/firmware/brcm"
wifi=
for g in $WIFI_FIRMWARE; do
  n=0
  for f in "$deb"/lib/firmware/brcm/$g "$deb"/usr/lib/firmware/brcm/$g; do
    [ -e "$f" ] && cp -L "$f" "$work/rootfs/usr/lib/firmware/brcm/" && n=$((n + 1)) && wifi=$(basename "$f")
  done
  [ $n -gt 0 ] || die "no Wi-Fi firmware $g in the firmware packages"
done
for f in "$deb"/usr/lib/firmware/brcm/brcmfmac434*; do
  [ -e "$f" ] && cp -L "$f" "$work/rootfs/usr/lib/firmware/brcm/"
done

# os-release names this board, as post-build.sh does for every board.
cp "$images/rootfs.ext4" "$bin/rootfs.ext4"
debugfs -R "cat /usr/lib/os-release" "$bin/rootfs.ext4" 2>/dev/null > "$work/os-release"
grep -q '^IMAGE_ID=' "$work/os-release" || die "no IMAGE_ID in the root file system's os-release"
sed -i -e "s/^VARIANT_ID=.*/VARIANT_ID=$board/" -e "s/^IMAGE_ID=.*/IMAGE_ID=vantage-$board/" "$work/os-release"
install -D -m 0644 "$work/os-release" "$work/rootfs/usr/lib/os-release"

# Into the copy of rootfs.ext4 with debugfs (no mount, no root needed):
# directories first, then files (rm first: os-release exists), owned by root.
{
  (cd "$work/rootfs" && find . -mindepth 1 -type d | sort) | while read -r d; do echo "mkdir ${d#.}"; done
  (cd "$work/rootfs" && find . -type f | sort) | while read -r f; do
    echo "rm ${f#.}"
    echo "write $work/rootfs/${f#./} ${f#.}"
    echo "sif ${f#.} uid 0"
    echo "sif ${f#.} gid 0"
  done
} > "$work/debugfs.cmds"
debugfs -w -f "$work/debugfs.cmds" "$bin/rootfs.ext4" > "$work/debugfs.log" 2>&1
e2fsck -fn "$bin/rootfs.ext4" > "$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log" >&2; die "rootfs.ext4 is damaged after writing the modules"; }
for f in "usr/lib/modules/$kver/modules.dep" "usr/lib/firmware/brcm/$wifi"; do
  debugfs -R "stat /$f" "$bin/rootfs.ext4" 2>/dev/null | grep -q 'Type: regular' || die "debugfs did not write /$f (log: $work/debugfs.log)"
done
debugfs -R "cat /usr/lib/os-release" "$bin/rootfs.ext4" 2>/dev/null | grep -qx "IMAGE_ID=vantage-$board" || die "os-release not rewritten"

# The initramfs: static busybox, the modules before root, the first-stage init.
ir=$work/initramfs
install_modules "$here/modules.initramfs" "$ir"
ln -s usr/lib "$ir/lib"
# The kernel asks /sbin/modprobe for modules it requests itself (crypto, file systems).
ln -s bin "$ir/sbin"
install -d "$ir/bin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/newroot" "$ir/etc"
for f in "$deb/bin/busybox" "$deb/usr/bin/busybox"; do
  [ -f "$f" ] && install -m 0755 "$f" "$ir/bin/busybox"
done
[ -x "$ir/bin/busybox" ] || die "no busybox in the busybox-static package"
for a in sh mount umount modprobe findfs sleep mkdir cat awk switch_root; do ln -s busybox "$ir/bin/$a"; done
grep -v -e '^#' -e '^$' "$here/modules.initramfs" > "$ir/etc/modules"
install -m 0755 "$top/initramfs-init" "$ir/init"
# Same bytes for the same inputs: fixed order, owner and times.
find "$ir" -exec touch -h -d @0 {} +
(cd "$ir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -9n > "$bin/initrd.img"

# Boot partition: Buildroot's rpi-firmware files (Pi 0-3 firmware, the
# volunteer's example file), card.conf's extra firmware, kernel, device trees, initramfs.
for f in bootcode.bin start.elf fixup.dat vantage.toml.example; do
  cp "$images/rpi-firmware/$f" "$bin/rpi-firmware/"
done
for f in $FIRMWARE_FILES; do
  cp "$deb/usr/lib/raspi-firmware/$f" "$bin/rpi-firmware/" || die "raspi-firmware has no $f"
done
cp "$here/config.txt" "$here/cmdline.txt" "$bin/rpi-firmware/"
grep -qx "kernel=$KERNEL_FILE" "$here/config.txt" || die "$here/config.txt does not boot kernel=$KERNEL_FILE (card.conf)"
# The kernel and its device trees: in boot/ and usr/lib/linux-image-VERSION/ of
# Debian 12's and 13's linux-image packages, in usr/lib/modules/VERSION/ of the
# split linux-binary and linux-base packages of Debian's 7.x kernels.
vmlinuz=$deb/boot/vmlinuz-$kver dtbs=$deb/usr/lib/linux-image-$kver
[ -f "$vmlinuz" ] || vmlinuz=$kbase/lib/modules/$kver/vmlinuz
[ -d "$dtbs" ] || dtbs=$kbase/lib/modules/$kver/dtb
cp "$vmlinuz" "$bin/$KERNEL_FILE" || die "no kernel image of $kver in the packages"
mv "$bin/initrd.img" "$bin/rpi-firmware/initrd.img"
for d in $DTBS; do
  cp "$dtbs/$DTB_DIR/$d.dtb" "$bin/" || die "kernel $kver has no $DTB_DIR/$d.dtb"
done
echo "$kver" > "$work/kernel-version"

# genimage is chatty: its output goes to a log, the last line (the card's hash) is shown.
BUILD_DIR=$work/build VANTAGE_SETTINGS=$VANTAGE_SETTINGS "$top/../post-image.sh" "$bin" "$board" > "$work/post-image.log" 2>&1 \
  || { tail -20 "$work/post-image.log" >&2; die "post-image.sh failed (log: $work/post-image.log)"; }
tail -1 "$work/post-image.log"
