#!/usr/bin/env bash
# make image BOARD=rpi0w|rpi3|rpi4|rpi5 HUB_URL=https://hub.example.org:8443 \
#            NETWORK_CA=path/ca.pem POLICY=path/policy.json
# Fetches the pinned Buildroot release (needs Internet access), builds the
# static binaries (make agent) and the image with the external tree image/buildroot,
# and leaves out/image/<board>/sdcard.img and sdcard.img.sha256.
#   BUILDROOT_DIR  an existing checkout of the pinned release (skips the download)
#   DL_DIR         Buildroot's download cache, shared across boards (default out/image/dl)
#   JOBS           parallel jobs (default: number of CPUs)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILDROOT_VERSION=2026.02.3
BUILDROOT_COMMIT=679b9ead7620bbf193620d1ebf56f53c1764d37a
BUILDROOT_GIT=${BUILDROOT_GIT:-https://gitlab.com/buildroot.org/buildroot.git}
BOARDS="rpi0w rpi3 rpi4 rpi5"

usage() { echo "usage: make image BOARD=<$(tr ' ' '|' <<<"$BOARDS")> HUB_URL=https://... NETWORK_CA=ca.pem POLICY=policy.json" >&2; exit 64; }
[ -n "${BOARD:-}" ] || usage
[[ " $BOARDS " == *" $BOARD "* ]] || { echo "error: unknown board '$BOARD'" >&2; usage; }
[[ ${HUB_URL:-} == https://* ]] || { echo "error: HUB_URL must be the hub's https:// URL" >&2; usage; }
if [ ! -s "${NETWORK_CA:-}" ] || ! grep -q 'BEGIN CERTIFICATE' "$NETWORK_CA"; then
  echo "error: NETWORK_CA must name the network CA certificate (PEM)" >&2; usage
fi
if [ ! -s "${POLICY:-}" ] || ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))["policy"]' "$POLICY" 2>/dev/null; then
  echo "error: POLICY must name the signed approval policy (JSON with a \"policy\" object)" >&2; usage
fi

out=$PWD/out/image
br=${BUILDROOT_DIR:-$out/buildroot-$BUILDROOT_VERSION}
obj=$out/build-$BOARD
mkdir -p "$out"
start=$(date +%s)

# Buildroot's own host prerequisites (manual, "System requirements").
bash scripts/deps.sh buildroot

if [ ! -f "$br/Makefile" ]; then
  echo "image: fetching Buildroot $BUILDROOT_VERSION"
  git clone --quiet --depth 1 --branch "$BUILDROOT_VERSION" "$BUILDROOT_GIT" "$br.tmp"
  mv "$br.tmp" "$br"
fi
# A clone must be at the pinned commit; an unpacked release tarball must say its version.
if git -C "$br" rev-parse --git-dir >/dev/null 2>&1; then
  have=$(git -C "$br" rev-parse HEAD)
  [ "$have" = "$BUILDROOT_COMMIT" ] || { echo "error: $br is at $have, not Buildroot $BUILDROOT_VERSION ($BUILDROOT_COMMIT)" >&2; exit 1; }
else
  have=$(sed -n 's/^export BR2_VERSION := //p' "$br/Makefile")
  [ "$have" = "$BUILDROOT_VERSION" ] || { echo "error: $br is Buildroot ${have:-?}, not $BUILDROOT_VERSION" >&2; exit 1; }
fi

# The very binaries CI checks.
bash scripts/cross/build.sh

# Hub settings: parameters, never edits to the tree (post-build.sh reads them).
mkdir -p "$obj/vantage-settings"
printf '%s\n' "$HUB_URL" > "$obj/vantage-settings/hub-url"
install -m 0644 "$NETWORK_CA" "$obj/vantage-settings/ca.pem"
install -m 0644 "$POLICY" "$obj/vantage-settings/policy.json"
git describe --always --dirty 2>/dev/null > "$obj/vantage-settings/version" || echo unknown > "$obj/vantage-settings/version"

export BR2_DL_DIR=${DL_DIR:-$out/dl}
make -C "$br" O="$obj" BR2_EXTERNAL="$PWD/image/buildroot" "vantage_${BOARD}_defconfig"
make -C "$br" O="$obj" -j"${JOBS:-$(nproc)}"

mkdir -p "$out/$BOARD"
cp "$obj/images/sdcard.img" "$obj/images/sdcard.img.sha256" "$out/$BOARD/"
echo "image: out/image/$BOARD/sdcard.img in $(( ($(date +%s) - start) / 60 )) min"
cat "$out/$BOARD/sdcard.img.sha256"
