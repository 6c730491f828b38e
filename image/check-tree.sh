#!/usr/bin/env bash
# make image-check: validates image/buildroot and image/overlay without
# downloading Buildroot (CI runs it):
#  - the BR2_EXTERNAL tree: external.desc, Config.in, external.mk, the package;
#  - every board has its defconfig, config.txt, cmdline.txt, and every path a
#    defconfig or script names exists (Buildroot's own paths too, when
#    BUILDROOT_DIR points at a checkout or git directory of the pinned release);
#  - with BUILDROOT_DIR: every BR2_ option of the defconfigs exists there;
#  - the Pi cards from registries (debian-kernel/<card>/): config.txt, cmdline.txt,
#    pinned packages, module lists (a built card: image/card-check.sh);
#  - shellcheck on every script;
#  - the package installs exactly the binaries and units the overlay's units use,
#    with the same user id as sysusers.d and the boot mount;
#  - systemd-analyze verify on the overlay's units; systemd-analyze security of
#    the agent's unit (exposure <= 2.0) and provisioning's, printed;
#  - post-image.sh + genimage.cfg.in build a real sdcard.img from stand-in boot
#    files: three partitions, labels, sizes, the volunteer's example file;
#  - vantage-grow-data grows that image's data partition on a loop device.
# Literal $(...) of Makefiles and defconfigs are matched in single quotes.
# shellcheck disable=SC2016,SC2013
set -euo pipefail
cd "$(dirname "$0")/.."
BR=image/buildroot
OV=image/overlay
BOARDS=(rpi0w rpi3 rpi4 rpi5 qemu_aarch64 armel_rootfs)
declare -A KERNEL=([rpi0w]=zImage [rpi3]=Image [rpi4]=Image [rpi5]=Image [qemu_aarch64]=Image [armel_rootfs]=zImage)
declare -A ARCH=([rpi0w]=BR2_arm=y [rpi3]=BR2_aarch64=y [rpi4]=BR2_aarch64=y [rpi5]=BR2_aarch64=y [qemu_aarch64]=BR2_aarch64=y
                 [armel_rootfs]=BR2_arm=y)
# Where a board's config.txt and cmdline.txt are (board/vantage/...), and the
# Pi board it is without the Pi kernel (its defconfig may differ in nothing else).
declare -A BOARD_DIR=([armel_rootfs]=debian-kernel/armel)
declare -A PI_BOARD=([qemu_aarch64]=rpi3 [armel_rootfs]=rpi0w)
# The Pi cards from registries (debian-kernel/<card>/).
CARDS=(arm64 armel rpi5)
BUILDROOT_TAG=$(sed -n 's/^BUILDROOT_VERSION=//p' image/build-image.sh)
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

# shellcheck source=image/card-lib.sh
. image/card-lib.sh
work=$(mktemp -d)
loopdev=
cleanup() { [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Buildroot's own files, from a checkout or a bare git directory.
br_has() {
  local p=$1
  if [ -f "$BUILDROOT_DIR/Makefile" ]; then [ -e "$BUILDROOT_DIR/$p" ]
  else git -C "$BUILDROOT_DIR" cat-file -e "$BUILDROOT_TAG:$p" 2>/dev/null; fi
}
br_grep_config() {
  if [ -f "$BUILDROOT_DIR/Makefile" ]; then
    grep -rqE "^\s*(menu)?config $1\$" --include='Config.in*' "$BUILDROOT_DIR"
  else
    git -C "$BUILDROOT_DIR" grep -qE "^\s*(menu)?config $1\$" "$BUILDROOT_TAG" -- '*Config.in*'
  fi
}

echo "== BR2_EXTERNAL tree ($BR)"
check "external.desc names the tree VANTAGE" grep -qx 'name: VANTAGE' $BR/external.desc
for f in $(sed -n 's|^source "\$BR2_EXTERNAL_VANTAGE_PATH/\(.*\)"|\1|p' $BR/Config.in); do
  check "Config.in sources $f, which exists" test -f "$BR/$f"
done
check "external.mk includes every package/*/*.mk" grep -q 'package/\*/\*.mk' $BR/external.mk
for d in "$BR"/package/*/; do
  p=$(basename "$d")
  check "package $p has Config.in and $p.mk" test -f "$d/Config.in" -a -f "$d/$p.mk"
  check "package $p is sourced by Config.in" grep -q "package/$p/Config.in" $BR/Config.in
done

echo "== boards"
for b in "${BOARDS[@]}"; do
  check "$b: defconfig $BR/configs/vantage_${b}_defconfig" test -f "$BR/configs/vantage_${b}_defconfig"
  [ -f "$BR/configs/vantage_${b}_defconfig" ] || continue
  # The whole configuration: the board's defconfig and the shared fragments.
  cfg=$work/vantage_${b}_defconfig
  image/defconfig.sh "$b" > "$cfg"
  dir=$BR/board/vantage/${BOARD_DIR[$b]:-$b}
  check "$b: config.txt and cmdline.txt" test -f "$dir/config.txt" -a -f "$dir/cmdline.txt"
  check "$b: the firmware package takes them" grep -qxF "BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE=\"\$(BR2_EXTERNAL_VANTAGE_PATH)/${dir#"$BR/"}/config.txt\"" "$cfg"
  check "$b: post-script argument is the board" grep -qx "BR2_ROOTFS_POST_SCRIPT_ARGS=\"$b\"" "$cfg"
  check "$b: architecture ${ARCH[$b]}" grep -qx "${ARCH[$b]}" "$cfg"
  check "$b: config.txt boots kernel=${KERNEL[$b]}" grep -qx "kernel=${KERNEL[$b]}" "$dir/config.txt"
  check "$b: cmdline.txt mounts the root read-only from partition 2 (or by its label)" \
    grep -qE '(^| )root=(/dev/mmcblk0p2|LABEL=rootfs) .*(^| )ro( |$)' "$dir/cmdline.txt"
  for opt in BR2_INIT_SYSTEMD=y BR2_PACKAGE_SYSTEMD_TIMESYNCD=y BR2_PACKAGE_CA_CERTIFICATES=y \
             BR2_PACKAGE_VANTAGE=y BR2_PACKAGE_WPA_SUPPLICANT=y \
             '# BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW is not set'; do
    check "$b: $opt" grep -qxF "$opt" "$cfg"
  done
  pi=${PI_BOARD[$b]:-}
  case $b in
    rpi*) check "$b: Wi-Fi firmware" grep -qxF BR2_PACKAGE_BRCMFMAC_SDIO_FIRMWARE_RPI_WIFI=y "$cfg" ;;
    *) check "$b: differs from $pi only in toolchain, pi.fragment (kernel, Wi-Fi firmware), config.txt/cmdline.txt and its name" \
      diff <(image/defconfig.sh "$pi" | grep -vxF -f "$BR/board/vantage/pi.fragment" | grep -v -e '^#' -e '^BR2_LINUX_KERNEL' -e TOOLCHAIN_EXTERNAL \
               -e POST_IMAGE_SCRIPT -e '_FILE="' | sed "s/$pi/BOARD/g" | sort) \
           <(grep -v -e '^#' -e POST_IMAGE_SCRIPT -e '_FILE="' "$cfg" | sed "s/$b/BOARD/g" | sort) ;;
  esac
  # Every path the defconfig names: ours (via BR2_EXTERNAL_VANTAGE_PATH) must
  # exist here; Buildroot's relative ones in the pinned release.
  while read -r path; do
    case "$path" in
      '$(BR2_EXTERNAL_VANTAGE_PATH)'/*) check "$b: path ${path#*)/} exists" test -e "$BR/${path#*)/}" ;;
      board/*|package/*|configs/*|support/*)
        if [ -n "${BUILDROOT_DIR:-}" ]; then check "$b: Buildroot $BUILDROOT_TAG has $path" br_has "$path"
        else skip "$b: Buildroot path $path (set BUILDROOT_DIR to check)"; fi ;;
    esac
  done < <(sed -n 's/^BR2_[A-Z0-9_]*="\(.*\)"$/\1/p' "$cfg" | tr ' ' '\n' | grep -E '^(\$\(BR2_EXTERNAL_VANTAGE_PATH\)|board|package|configs|support)/')
  if [ -n "${BUILDROOT_DIR:-}" ]; then
    missing=()
    for opt in $(sed -n 's/^\(# \)\?\(BR2_[A-Z0-9_]*\)[= ].*/\2/p' "$cfg" | sort -u); do
      grep -qE "^\s*config $opt\$" $BR/package/*/Config.in && continue
      br_grep_config "$opt" || missing+=("$opt")
    done
    if [ ${#missing[@]} -eq 0 ]; then ok "$b: every option exists in Buildroot $BUILDROOT_TAG"
    else bad "$b: options unknown to Buildroot $BUILDROOT_TAG: ${missing[*]}"; fi
  fi
done
# With a checkout of the pinned release: Buildroot's own Kconfig must keep
# every line of each defconfig (nothing dropped for unmet dependencies), and
# the package must resolve to the right prebuilt binaries.
if [ -f "${BUILDROOT_DIR:-}/Makefile" ]; then
  for b in "${BOARDS[@]}"; do
    o=$work/br-$b
    mkdir -p "$o"; image/defconfig.sh "$b" > "$o/defconfig.in"
    if ! log=$(make -s -C "$BUILDROOT_DIR" O="$o" BR2_EXTERNAL="$PWD/$BR" BR2_DEFCONFIG="$o/defconfig.in" defconfig 2>&1); then
      bad "$b: Buildroot's defconfig of $b:"; echo "$log"; continue
    fi
    dropped=$(grep -v -e '^$' -e '^#' "$o/defconfig.in" | grep -vxF -f "$o/.config" || true)
    if [ -z "$dropped" ]; then ok "$b: Buildroot's Kconfig keeps every line of the defconfig"
    else bad "$b: Buildroot's Kconfig dropped: $dropped"; fi
    site=$(make -s -C "$BUILDROOT_DIR" O="$o" printvars VARS=VANTAGE_SITE 2>/dev/null | sed -n 's/^VANTAGE_SITE=//p')
    want=$(case ${ARCH[$b]} in BR2_arm=y) echo arm-unknown-linux-musleabihf ;; *) echo aarch64-unknown-linux-musl ;; esac)
    check "$b: package vantage takes out/bin/$want" test "$(basename "$site")" = "$want"
  done
fi
check "no defconfig for a board that is not in the list" \
  test "$(find $BR/configs -name 'vantage_*_defconfig' | wc -l)" -eq ${#BOARDS[@]}

echo "== shellcheck"
scripts=("$BR"/board/vantage/*.sh "$BR"/board/vantage/*/*.sh "$OV"/usr/libexec/vantage/* image/*.sh image/sources/*.sh scripts/cross/*.sh)
for s in "${scripts[@]}"; do check "shellcheck $s" shellcheck -x "$s"; done
for s in "$BR"/board/vantage/*.sh "$BR"/board/vantage/*/*.sh "$OV"/usr/libexec/vantage/* image/sources/*.sh; do check "$s is executable" test -x "$s"; done

echo "== Pi cards from registries ($BR/board/vantage/debian-kernel)"
DK=$BR/board/vantage/debian-kernel
declare -A CARD_LINES=([arm64]='arm_64bit=1|kernel=Image' [armel]='kernel=zImage' [rpi5]='arm_64bit=1|kernel=Image')
# The serial console: the Pi 3/4's and Zero W's mini UART, the Pi Zero/1's PL011,
# the Pi 5's debug UART.
declare -A CARD_CONSOLE=([arm64]='console=ttyS1,115200' [armel]='console=ttyAMA0,115200 console=ttyS1,115200'
                         [rpi5]='console=ttyAMA10,115200')
# Drivers without which the card cannot mount its root (the SD controller where
# it is a module): the initramfs must load them.
declare -A CARD_SD=([arm64]='bcm2835 sdhci-iproc' [armel]='' [rpi5]='sdhci-brcmstb')
for a in "${CARDS[@]}"; do
  d=$DK/$a
  IFS='|' read -ra lines <<<"${CARD_LINES[$a]}"
  for l in "${lines[@]}" 'upstream_kernel=1' 'enable_uart=1' 'initramfs initrd.img followkernel'; do
    check "debian-kernel $a config.txt: $l" grep -qx "$l" "$d/config.txt"
  done
  check "debian-kernel $a cmdline.txt: root by label, read-only, ${CARD_CONSOLE[$a]}" \
    grep -qE "(^| )root=LABEL=rootfs .*(^| )ro .*${CARD_CONSOLE[$a]}" "$d/cmdline.txt"
  check "debian-kernel $a sources.tsv: every row a Debian package pinned by SHA-256" \
    awk -F'\t' '!/^#/ { n++; if (NF != 7 || $3 !~ /\.deb$/ || length($4) != 64 || $4 ~ /[^0-9a-f]/ || $5 !~ /^deb:/) exit 1 } END { exit n >= 4 ? 0 : 1 }' "$d/sources.tsv"
  for use in kernel firmware wifi initramfs; do
    check "debian-kernel $a sources.tsv has one $use row" test "$(awk -F'\t' -v u=$use '$2 == u' "$d/sources.tsv" | wc -l)" -eq 1
  done
  for m in ${CARD_SD[$a]}; do
    check "debian-kernel $a modules.initramfs loads the SD controller's $m" grep -qx "$m" "$d/modules.initramfs"
  done
  deb_arch=$(sed -n 's/^DEB_ARCH=//p' "$d/card.conf")
  check "debian-kernel $a card.conf: Debian architecture $deb_arch, whose toolchain image/sources/$deb_arch.fragment names" \
    test -f "image/sources/$deb_arch.fragment"
  for l in modules.initramfs modules.rootfs; do
    check "debian-kernel $a $l names modules" grep -qv -e '^#' -e '^$' "$d/$l"
  done
  rootfs_board=$(sed -n 's/^ROOTFS_BOARD=//p' "$d/card.conf")
  check "debian-kernel $a card.conf: root file system of board $rootfs_board, which is checked above" \
    grep -qw "$rootfs_board" <<<"${BOARDS[*]}"
  check "debian-kernel $a card.conf: its KERNEL_FILE is config.txt's kernel=" \
    grep -qx "kernel=$(sed -n 's/^KERNEL_FILE=//p' "$d/card.conf")" "$d/config.txt"
done
for b in "${BOARDS[@]}"; do
  case $b in
    rpi*) check "board $b is in one card.conf's PI_BOARDS" \
      test "$(grep -lE "^PI_BOARDS=\"(.* )?$b( .*)?\"$" "$DK"/*/card.conf | wc -l)" -eq 1 ;;
  esac
done
check "every card directory of $DK is checked here (${CARDS[*]})" \
  test "$(find "$DK" -mindepth 2 -maxdepth 2 -name card.conf | wc -l)" -eq ${#CARDS[@]}
check "shellcheck $DK/initramfs-init" shellcheck -s sh "$DK/initramfs-init"
check "$DK/initramfs-init is executable" test -x "$DK/initramfs-init"

echo "== package installs what the overlay expects"
mk=$BR/package/vantage/vantage.mk
units_used=$(grep -h '^ExecStart=' "$OV"/usr/lib/systemd/system/vantage-*.service | sed 's/^ExecStart=[-@!+:]*\([^ ]*\).*/\1/' | grep '^/usr/bin/' | sort -u)
bins_installed=$(grep -o '\$(TARGET_DIR)/usr/bin/[a-z-]*' "$mk" | sed 's/\$(TARGET_DIR)//' | sort -u)
check "binaries installed by vantage.mk = binaries the overlay's units start ($(echo "$units_used" | tr '\n' ' '))" \
  test "$units_used" = "$bins_installed"
units_installed=$(grep -o '\$(TARGET_DIR)/usr/lib/systemd/system/[a-z@.-]*' "$mk" | sed 's|.*/||' | sort -u)
units_overlay=$(find "$OV/usr/lib/systemd/system" -name 'vantage-*.service' -printf '%f\n' | grep -v -e grow-data -e early | sort -u)
check "units installed by vantage.mk = the overlay's agent and provisioning units" test "$units_installed" = "$units_overlay"
for u in $units_installed; do
  check "vantage.mk takes $u from the overlay" grep -q "VANTAGE_OVERLAY)/usr/lib/systemd/system/$u" "$mk"
done
uid_sysusers=$(awk '$1 == "u" && $2 == "vantage" { print $3 }' "$OV"/usr/lib/sysusers.d/vantage.conf)
uid_mk=$(awk '$1 == "vantage" { print $2 ":" $4 }' "$mk")
check "vantage uid/gid: sysusers.d $uid_sysusers, vantage.mk $uid_mk" test "$uid_mk" = "$uid_sysusers:$uid_sysusers"
check "boot mount gives the files to uid/gid $uid_sysusers" grep -q "uid=$uid_sysusers,gid=$uid_sysusers" "$OV"/usr/lib/systemd/system/boot-firmware.mount
check "data partition created with root owner $uid_sysusers" grep -q "root_owner=$uid_sysusers:$uid_sysusers" $BR/board/vantage/genimage.cfg.in
check "preset enables every vantage unit with an [Install] section" bash -c '
  for u in '"$OV"'/usr/lib/systemd/system/*; do
    grep -q "^\[Install\]" "$u" || continue
    grep -qx "enable $(basename "$u")" '"$OV"'/usr/lib/systemd/system-preset/50-vantage.preset || { echo "not enabled: $u"; exit 1; }
  done'

agent=out/bin/aarch64-unknown-linux-musl/vantage-agent
if [ -x "$agent" ]; then
  check "the agent accepts the overlay's /etc/vantage/agent.toml" bash -c \
    "qemu-aarch64-static '$agent' --config '$OV/etc/vantage/agent.toml' check-config 2>&1 | grep -q '^ok  *configuration'"
fi

echo "== systemd units (systemd $(systemd-analyze --version | sed -n '1s/systemd \([0-9]*\).*/\1/p'))"
root=$work/root
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$(readlink -f /bin/sh)" "$root/bin/sh"
cp -a "$OV"/. "$root"/
cp -a "$BR"/board/vantage/rootfs-overlay/. "$root"/
bins=out/bin/aarch64-unknown-linux-musl
if [ -x "$bins/vantage-agent" ]; then
  cp "$bins"/vantage-agent "$bins"/vantage-provision "$root/usr/bin/"
else
  bad "$bins/vantage-agent missing: run make agent first"
fi
units=("$OV"/usr/lib/systemd/system/*)
mapfile -t rel < <(for u in "${units[@]}"; do echo "usr/lib/systemd/system/$(basename "$u")"; done)
if out=$(cd "$root" && systemd-analyze verify --root="$root" "${rel[@]}" 2>&1) && [ -z "$out" ]; then
  ok "systemd-analyze verify: ${#units[@]} units, no warnings"
else
  bad "systemd-analyze verify:"; echo "$out"
fi
for u in vantage-agent vantage-provision; do
  sec=$(cd "$root" && systemd-analyze security --offline=true --root="$root" "usr/lib/systemd/system/$u.service" 2>&1) || true
  echo "$sec" | grep -v '^✓' | sed 's/^/     /'
  exposure=$(echo "$sec" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
  if [ -n "$exposure" ] && awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
    ok "$u.service: exposure $exposure <= $MAX_EXPOSURE"
  else
    bad "$u.service: exposure '${exposure:-?}' (target <= $MAX_EXPOSURE)"
  fi
done

echo "== post-build.sh"
tgt=$work/target
mkdir -p "$tgt/usr/lib" "$work/settings"
printf 'NAME=Buildroot\nVERSION_ID=2026.02.3\n' > "$tgt/usr/lib/os-release"
echo "https://hub.example.org:8443" > "$work/settings/hub-url"
printf -- '-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n' > "$work/settings/ca.pem"
echo '{"policy": {"serial": 1}, "signatures": []}' > "$work/settings/policy.json"
if log=$(VANTAGE_SETTINGS=$work/settings "$BR/board/vantage/post-build.sh" "$tgt" rpi4 2>&1); then
  ok "post-build.sh rpi4 ran"
  check "post-build: CA, policy and mount points in place" test -s "$tgt/etc/vantage/ca.pem" -a -s "$tgt/etc/vantage/policy.json" -a -d "$tgt/boot/firmware" -a -d "$tgt/var/lib/vantage"
  check "post-build: os-release names the board" grep -qx 'IMAGE_ID=vantage-rpi4' "$tgt/usr/lib/os-release"
else
  bad "post-build.sh:"; echo "$log"
fi
rm -rf "$work/settings"
check "post-build.sh refuses to build without the hub settings" bash -c "! VANTAGE_SETTINGS='$work/none' '$BR/board/vantage/post-build.sh' '$tgt' rpi4 2>/dev/null"

echo "== SD-card layout (post-image.sh + genimage with stand-in boot files)"
bin=$work/images
mkdir -p "$bin/rpi-firmware" "$work/build"
b=rpi4
cp "$BR/board/vantage/$b/config.txt" "$bin/rpi-firmware/config.txt"
cp "$BR/board/vantage/$b/cmdline.txt" "$bin/rpi-firmware/cmdline.txt"
cp provision/vantage.toml.example "$bin/rpi-firmware/"
mkdir -p "$work/settings" && echo "https://hub.example.org:8443" > "$work/settings/hub-url"
for f in start4.elf fixup4.dat; do head -c 4096 /dev/urandom > "$bin/rpi-firmware/$f"; done
head -c 65536 /dev/urandom > "$bin/Image"
head -c 4096 /dev/urandom > "$bin/bcm2711-rpi-4-b.dtb"
mkdir -p "$work/rootfs/etc" && echo vantage > "$work/rootfs/etc/hostname"
mkfs.ext4 -q -L rootfs -d "$work/rootfs" "$bin/rootfs.ext4" 32M >/dev/null
if log=$(PATH="/usr/sbin:/sbin:$PATH" BUILD_DIR=$work/build BASE_DIR=$work DATA_SIZE=16M VANTAGE_SETTINGS=$work/settings \
          "$BR/board/vantage/post-image.sh" "$bin" "$b" 2>&1); then
  ok "post-image.sh $b: $(tail -1 <<<"$log")"
else
  bad "post-image.sh $b:"; echo "$log"
fi
img=$bin/sdcard.img
if [ -f "$img" ]; then
  card_layout "$img" "$work" https://hub.example.org:8443 config.txt cmdline.txt vantage.toml.example Image bcm2711-rpi-4-b.dtb start4.elf

  echo "== first boot: vantage-grow-data on a loop device"
  cp "$img" "$work/card.img"
  truncate -s +64M "$work/card.img"
  if loopdev=$(losetup --find --show --partscan "$work/card.img" 2>/dev/null); then
    # Where the loop driver does not scan partitions itself (max_part=0).
    [ -b "${loopdev}p3" ] || partx --add "$loopdev" 2>/dev/null || true
    for _ in $(seq 20); do [ -b "${loopdev}p3" ] && break; sleep 0.1; done
  fi
  if [ -n "$loopdev" ] && [ -b "${loopdev}p3" ]; then
    before=$(blockdev --getsize64 "${loopdev}p3")
    if log=$(PATH="/usr/sbin:/sbin:$PATH" "$OV"/usr/libexec/vantage/grow-data "${loopdev}p3" 2>&1); then
      after=$(blockdev --getsize64 "${loopdev}p3")
      fs=$(dumpe2fs -h "${loopdev}p3" 2>/dev/null | awk -F: '/^Block count/ { c = $2 } /^Block size/ { s = $2 } END { print c * s }')
      check "grow-data: partition $before -> $after bytes, file system $fs bytes" test "$after" -gt $((before + 60 * 1048576)) -a "$fs" -eq "$after"
      again=$(PATH="/usr/sbin:/sbin:$PATH" "$OV"/usr/libexec/vantage/grow-data "${loopdev}p3" 2>&1)
      check "grow-data a second time does nothing ($again)" grep -q 'already fills' <<<"$again"
    else
      bad "grow-data:"; echo "$log"
    fi
  else
    skip "grow-data: no loop devices with partition scanning here"
  fi
fi

echo "image-check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
