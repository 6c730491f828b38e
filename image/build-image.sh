#!/usr/bin/env bash
# make image BOARD=rpi0w|rpi3|rpi4|rpi5|qemu_aarch64 HUB_URL=https://hub.example.org:8443 \
#            NETWORK_CA=path/ca.pem POLICY=path/policy.json [SOURCES=upstream|registries]
# Builds the static binaries (make agent) and the SD-card image with the external
# tree image/buildroot; leaves out/image/<board>/sdcard.img and sdcard.img.sha256.
#   SOURCES=upstream    Buildroot's own downloads (needs Internet); the Pi boards' default
#   SOURCES=registries  every source from package registries and the frozen mirror
#                       (image/sources/, docs/images.md "Sources"); qemu_aarch64's default.
#                       rpi3, rpi4, rpi5 and rpi0w too: Buildroot builds a root file system
#                       with Debian's cross toolchain (rpi3/rpi4/rpi5: qemu_aarch64's, the
#                       same output; rpi0w: armel_rootfs's), and the Pi card gets Debian's
#                       kernel, its modules, an initramfs and the Wi-Fi firmware
#                       (board/vantage/debian-kernel/), and is checked (image/card-check.sh).
#                       rpi3 and rpi4 give the same card (Pi 3 B/B+, Zero 2 W, Pi 4, Pi 400);
#                       rpi5's boots the Pi 5 B, rpi0w's Pi Zero, Zero W, 1
#   KERNEL              qemu_aarch64 only: the arm64 kernel that goes onto the card
#   BUILDROOT_DIR       an existing tree of the pinned release (skips fetching it)
#   BUILDROOT_TARBALL   the pinned release as a tarball (default: ../shared/buildroot/
#                       buildroot-<version>.tar.xz beside the repository, when it exists)
#   VANTAGE_CACHE       where sources, toolchain and registries builds are kept, keyed
#                       by content (default /var/cache/vantage, else ~/.cache/vantage)
#   DL_DIR              SOURCES=upstream: Buildroot's download cache (default out/image/dl)
#   JOBS                parallel jobs (default: number of CPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

BUILDROOT_VERSION=2026.02.3
BUILDROOT_COMMIT=679b9ead7620bbf193620d1ebf56f53c1764d37a
BUILDROOT_SHA256=bec7bcdaa4f16cb117960ca40451f07a147f38d91318fed99bbd2e15244f161e
BUILDROOT_GIT=${BUILDROOT_GIT:-https://gitlab.com/buildroot.org/buildroot.git}
BOARDS="rpi0w rpi3 rpi4 rpi5 qemu_aarch64"

usage() { echo "usage: make image BOARD=<$(tr ' ' '|' <<<"$BOARDS")> HUB_URL=https://... NETWORK_CA=ca.pem POLICY=policy.json [SOURCES=upstream|registries]" >&2; exit 64; }
[ -n "${BOARD:-}" ] || usage
[[ " $BOARDS " == *" $BOARD "* ]] || { echo "error: unknown board '$BOARD'" >&2; usage; }
[[ ${HUB_URL:-} == https://* ]] || { echo "error: HUB_URL must be the hub's https:// URL" >&2; usage; }
if [ ! -s "${NETWORK_CA:-}" ] || ! grep -q 'BEGIN CERTIFICATE' "$NETWORK_CA"; then
  echo "error: NETWORK_CA must name the network CA certificate (PEM)" >&2; usage
fi
if [ ! -s "${POLICY:-}" ] || ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))["policy"]' "$POLICY" 2>/dev/null; then
  echo "error: POLICY must name the signed approval policy (JSON with a \"policy\" object)" >&2; usage
fi
if [ "$BOARD" = qemu_aarch64 ]; then
  SOURCES=${SOURCES:-registries}
  [ -s "${KERNEL:-}" ] || { echo "error: BOARD=qemu_aarch64 needs KERNEL=<arm64 kernel> (make qemu-test passes Debian's)" >&2; usage; }
  export VANTAGE_KERNEL; VANTAGE_KERNEL=$(readlink -f "$KERNEL")
fi
SOURCES=${SOURCES:-upstream}
# The Buildroot configuration that builds this board's root file system: its
# own, except for the Pi cards from registries, whose root file system is
# that of their card's directory (debian-kernel/<card>/card.conf), as is the
# Debian architecture of the toolchain.
br_board=$BOARD
debarch=
card=
case $SOURCES in
  upstream) ;;
  registries)
    # The card directory whose card.conf lists the board (PI_BOARDS).
    case $BOARD in
      qemu_aarch64) debarch=arm64 ;;
      *) card=$(cd image/buildroot/board/vantage/debian-kernel && grep -lE "^PI_BOARDS=\"(.* )?$BOARD( .*)?\"$" ./*/card.conf | cut -d/ -f2) ;;
    esac
    if [ -n "$card" ]; then
      conf=image/buildroot/board/vantage/debian-kernel/$card/card.conf
      [ -z "${KERNEL:-}" ] || { echo "error: KERNEL is for BOARD=qemu_aarch64; the $BOARD card takes the kernel pinned in ${conf%card.conf}sources.tsv" >&2; exit 64; }
      br_board=$(sed -n 's/^ROOTFS_BOARD=//p' "$conf")
      debarch=$(sed -n 's/^DEB_ARCH=//p' "$conf")
    fi ;;
  *) echo "error: SOURCES must be upstream or registries" >&2; usage ;;
esac

cache=${VANTAGE_CACHE:-/var/cache/vantage}
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache=$HOME/.cache/vantage
mkdir -p "$cache"
out=$repo/out/image
mkdir -p "$out"
start=$(date +%s)
say() { echo "image: [$(( $(date +%s) - start ))s] $*"; }

# Buildroot's own host prerequisites (manual, "System requirements"), and
# what the registries build uses from the host (deps.d/buildroot.list).
bash scripts/deps.sh buildroot

# The pinned Buildroot release: a given tree, the release tarball, or a clone.
tarball=${BUILDROOT_TARBALL:-$repo/../shared/buildroot/buildroot-$BUILDROOT_VERSION.tar.xz}
if [ -n "${BUILDROOT_DIR:-}" ]; then
  br=$BUILDROOT_DIR
elif [ -f "$tarball" ] || [ -f "$cache/buildroot-$BUILDROOT_VERSION/Makefile" ]; then
  # Unpacked once into the cache (checked there below), from the release tarball.
  br=$cache/buildroot-$BUILDROOT_VERSION
  if [ ! -f "$br/Makefile" ]; then
    [ "$(sha256sum < "$tarball" | cut -d' ' -f1)" = "$BUILDROOT_SHA256" ] \
      || { echo "error: $tarball is not Buildroot $BUILDROOT_VERSION (sha256 differs)" >&2; exit 1; }
    say "unpacking $tarball"
    rm -rf "$br.tmp"; mkdir -p "$br.tmp"
    tar -xf "$tarball" --strip-components=1 -C "$br.tmp"
    mv "$br.tmp" "$br"
  fi
else
  [ "$SOURCES" = upstream ] || { echo "error: no Buildroot release ($tarball missing): give BUILDROOT_TARBALL or BUILDROOT_DIR (no registry serves it)" >&2; exit 1; }
  br=$out/buildroot-$BUILDROOT_VERSION
  if [ ! -f "$br/Makefile" ]; then
    say "fetching Buildroot $BUILDROOT_VERSION"
    git clone --quiet --depth 1 --branch "$BUILDROOT_VERSION" "$BUILDROOT_GIT" "$br.tmp"
    mv "$br.tmp" "$br"
  fi
fi
# A clone must be at the pinned commit; an unpacked release tarball must say its version.
if git -C "$br" rev-parse --git-dir >/dev/null 2>&1 && [ -d "$br/.git" ]; then
  have=$(git -C "$br" rev-parse HEAD)
  [ "$have" = "$BUILDROOT_COMMIT" ] || { echo "error: $br is at $have, not Buildroot $BUILDROOT_VERSION ($BUILDROOT_COMMIT)" >&2; exit 1; }
else
  have=$(sed -n 's/^export BR2_VERSION := //p' "$br/Makefile")
  [ "$have" = "$BUILDROOT_VERSION" ] || { echo "error: $br is Buildroot ${have:-?}, not $BUILDROOT_VERSION" >&2; exit 1; }
fi

# The very binaries CI checks.
say "static binaries (make agent)"
bash scripts/cross/build.sh

fragments=()
if [ "$SOURCES" = registries ]; then
  # The output directory is kept between runs, keyed by everything that decides
  # what Buildroot builds except the binaries, the overlay and the hub settings,
  # which every run puts in afresh (vantage-dirclean, target-finalize, post-build).
  # Debian's cross toolchain for the root file system's architecture: the
  # fragment names its triple (image/sources/<arch>.fragment).
  frags=(image/sources/registries.fragment "image/sources/$debarch.fragment")
  triple=$(sed -n 's/^BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX="\(.*\)"$/\1/p' "${frags[1]}")
  key=$( { image/defconfig.sh "$br_board" "${frags[@]}"; cat image/sources/*.sh image/sources/*.tsv \
           image/sources/local.mk.in image/sources/patches/* image/buildroot/package/*/* image/buildroot/Config.in \
           image/buildroot/external.*; echo "$BUILDROOT_VERSION"; } | sha256sum | cut -c1-16)
  src=$cache/br-src-$(cat image/sources/sources.tsv image/sources/prepare.sh image/sources/local.mk.in image/sources/patches/* | sha256sum | cut -c1-16)
  toolchain=$cache/toolchain-$( { cat image/sources/debian-toolchain.sh; echo "$triple"
    dpkg-query -W "gcc-$triple" "libc6-dev-$debarch-cross" "g++-$triple"; } | sha256sum | cut -c1-16)
  obj=$cache/br-out/$br_board-$key
  say "sources from package registries and the frozen mirror (cache $cache)"
  bash image/sources/fetch.sh "$cache/sources"
  if [ -n "$card" ]; then
    # The Pi card's Debian packages.
    pi=image/buildroot/board/vantage/debian-kernel
    bash $pi/fetch-debs.sh "$cache/sources" "$card"
  fi
  if [ "$br_board" = qemu_aarch64 ] && [ "$BOARD" != qemu_aarch64 ]; then
    # The shared qemu_aarch64 output puts a kernel on its own card (kernel.sh):
    # the Pi card's.
    kdeb=$cache/sources/$(awk -F'\t' '$2 == "kernel" { print $4 }' "$pi/$card/sources.tsv")
    mkdir -p "$out/$BOARD"
    kx=$(mktemp -d)
    dpkg-deb -x "$kdeb" "$kx"
    # boot/vmlinuz-VERSION; usr/lib/modules/VERSION/vmlinuz in Debian's split 7.x packages.
    find "$kx" -path '*/boot/vmlinuz-*' -o -path '*/lib/modules/*/vmlinuz' | head -1 | xargs -I{} cp {} "$out/$BOARD/.vmlinuz"
    rm -rf "$kx"
    [ -s "$out/$BOARD/.vmlinuz" ] || { echo "error: no kernel image in $kdeb" >&2; exit 1; }
    export VANTAGE_KERNEL=$out/$BOARD/.vmlinuz
  fi
  if [ ! -f "$src/local.mk" ]; then
    rm -rf "$src.tmp"
    bash image/sources/prepare.sh "$br" "$cache/sources" "$src.tmp" > "$cache/prepare.log" 2>&1 \
      || { tail -20 "$cache/prepare.log" >&2; echo "error: preparing the sources failed; log: $cache/prepare.log" >&2; exit 1; }
    # local.mk names the directory it was made in.
    sed -i "s|$src.tmp|$src|g" "$src.tmp/local.mk"
    mv "$src.tmp" "$src"
  fi
  if [ ! -x "$toolchain/usr/bin/$triple-gcc" ]; then
    rm -rf "$toolchain.tmp"
    bash image/sources/debian-toolchain.sh "$toolchain.tmp" "$triple"
    mv "$toolchain.tmp" "$toolchain"
    # The toolchain's wrappers name the directory they were made in.
    grep -rl "$toolchain.tmp" "$toolchain/usr/bin" | xargs -r sed -i "s|$toolchain.tmp|$toolchain|g"
  fi
  cat "${frags[@]}" | sed -e "s|@SRC@|$src|g" -e "s|@TOOLCHAIN@|$toolchain|g" > "$cache/registries.fragment.$$"
  fragments=("$cache/registries.fragment.$$")
  # Older outputs of this board only take space (a few GB each).
  # (Not this output's lock file: another build may hold it.)
  for old in "$cache/br-out/$br_board"-*; do
    [ -e "$old" ] && [ "$old" != "$obj" ] && [ "$old" != "$obj.lock" ] && { say "removing the outdated build $old"; rm -rf "$old"; }
  done
else
  obj=$out/build-$BOARD
  export BR2_DL_DIR=${DL_DIR:-$out/dl}
fi
mkdir -p "$obj"
exec 9>"$obj.lock"
flock -n 9 || { say "waiting for another build of $obj"; flock 9; }

# Hub settings: parameters, never edits to the tree (post-build.sh reads them).
mkdir -p "$obj/vantage-settings"
printf '%s\n' "$HUB_URL" > "$obj/vantage-settings/hub-url"
install -m 0644 "$NETWORK_CA" "$obj/vantage-settings/ca.pem"
install -m 0644 "$POLICY" "$obj/vantage-settings/policy.json"
git describe --always --dirty 2>/dev/null > "$obj/vantage-settings/version" || echo unknown > "$obj/vantage-settings/version"

image/defconfig.sh "$br_board" "${fragments[@]}" > "$obj/defconfig.in"
rm -f "${fragments[@]}"
make -s -C "$br" O="$obj" BR2_EXTERNAL="$repo/image/buildroot" BR2_DEFCONFIG="$obj/defconfig.in" defconfig \
  2>&1 | grep -v -e 'warning: override: reassigning' -e '^#' -e '^$' -e 'GEN ' || true
# GNU tar's configure refuses to run as root unless told.
[ "$(id -u)" = 0 ] && export FORCE_UNSAFE_CONFIGURE=1
if [ -f "$obj/images/rootfs.ext4" ]; then
  say "reusing $obj: rebuilding the vantage package, the root file system and the card"
  make -s -C "$obj" vantage-dirclean >/dev/null
else
  say "building in $obj (a clean build takes about 25 minutes on 2 cores; log $obj/build.log)"
fi
# Buildroot's ">>> package version step" lines are the progress; the rest goes to the log.
set +e
make -C "$obj" -j"${JOBS:-$(nproc)}" > "$obj/build.log" 2>&1 &
pid=$!
tail -n +1 -F --pid=$pid "$obj/build.log" 2>/dev/null | sed -u 's/\x1b\[[0-9]*m//g' \
  | grep --line-buffered -E '^>>> [^ ]+ [^ ]+ (Extracting|Syncing|Building|Installing to target)' \
  | while read -r line; do say "${line#>>> }"; done
wait $pid
rc=$?
set -e
if [ $rc -ne 0 ]; then
  tail -40 "$obj/build.log" >&2
  echo "error: Buildroot failed (exit $rc); whole log: $obj/build.log" >&2
  exit 1
fi

mkdir -p "$out/$BOARD"
if [ "$br_board" != "$BOARD" ]; then
  # Still under the output's lock: its images/ are this run's.
  say "the $BOARD card: Debian's kernel, modules, initramfs and Wi-Fi firmware (board/vantage/debian-kernel/$card)"
  PATH="$obj/host/bin:/usr/sbin:/sbin:$PATH" VANTAGE_STORE=$cache/sources VANTAGE_SETTINGS=$obj/vantage-settings \
    image/buildroot/board/vantage/debian-kernel/assemble.sh "$card" "$obj/images" "$BOARD" "$obj/card-$BOARD"
  cp "$obj/card-$BOARD/images/sdcard.img" "$obj/card-$BOARD/images/sdcard.img.sha256" "$out/$BOARD/"
  rm -rf "$obj/card-$BOARD" "${VANTAGE_KERNEL:-}"
  say "checking the $BOARD card (image/card-check.sh)"
  IMG=$out/$BOARD/sdcard.img image/card-check.sh
else
  cp "$obj/images/sdcard.img" "$obj/images/sdcard.img.sha256" "$out/$BOARD/"
fi
say "out/image/$BOARD/sdcard.img in $(( ($(date +%s) - start) / 60 )) min"
cat "$out/$BOARD/sdcard.img.sha256"
