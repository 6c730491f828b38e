#!/usr/bin/env bash
# make agent-releases: the agent builds make qemu-test installs as releases
# (docs/qemu-test.md): the same source as make agent with other version
# strings, for both Pi targets, in out/bin-releases/<version>/<target>/:
#   0.2.0  an ordinary build that reports version 0.2.0
#   0.2.1  built with the feature fail-after-start: exits before its first heartbeat
# Cached by content: the key is the SHA-256 of make agent's vantage-agent for
# the target (builds are reproducible, so equal bytes mean equal source),
# the version and the features; a hit is copied from $CACHE. Built in make
# agent's target directory: only the agent crate and the link are redone (the
# next make agent redoes them once more, to the same bytes).
#   TARGETS  space-separated Rust targets (default: both Pi targets)
#   CACHE    (default: build/qemu-cache/agent-releases)
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGETS=${TARGETS:-"aarch64-unknown-linux-musl arm-unknown-linux-musleabihf"}
CACHE=${CACHE:-build/qemu-cache/agent-releases}
OUT=out/bin-releases
VARIANTS=("0.2.0:" "0.2.1:vantage-agent/fail-after-start")

for v in "${VARIANTS[@]}"; do
  version=${v%%:*} features=${v#*:}
  for t in $TARGETS; do
    base=out/bin/$t/vantage-agent
    [ -f "$base" ] || { echo "error: $base missing: run make agent first" >&2; exit 1; }
    key=$(printf '%s %s %s\n' "$(sha256sum < "$base" | cut -d' ' -f1)" "$version" "$features" \
      | sha256sum | cut -c1-24)
    cached=$CACHE/$key/vantage-agent
    if [ ! -f "$cached" ]; then
      echo "== building vantage-agent $version for $t${features:+ with $features}"
      VANTAGE_VERSION=$version FEATURES=$features TARGETS=$t OUT="$CACHE/$key.tmp" \
        bash scripts/cross/build.sh
      mkdir -p "$CACHE/$key"
      mv "$CACHE/$key.tmp/$t/vantage-agent" "$cached.part" && mv "$cached.part" "$cached"
      rm -rf "$CACHE/$key.tmp"
    fi
    mkdir -p "$OUT/$version/$t"
    install -m 0755 "$cached" "$OUT/$version/$t/vantage-agent"
    printf '%-8s %-30s %s\n' "$version" "$t" "$(sha256sum < "$cached" | cut -c1-16)"
  done
done
