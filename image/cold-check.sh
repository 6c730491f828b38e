#!/usr/bin/env bash
# make image-cold-check: builds the QEMU board's image (make image BOARD=qemu_aarch64
# SOURCES=registries) from an empty cache, as on a new machine: sources fetched and
# checked, toolchain relocated, Buildroot from scratch. Prints time and disk; the
# cache is removed afterwards unless KEEP=1. Not part of make test (about 25 minutes
# on 2 cores); make test's image build reuses /var/cache/vantage.
set -euo pipefail
cd "$(dirname "$0")/.."
cold=$(mktemp -d /var/tmp/vantage-cold.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$cold"' EXIT
# A throw-away network: the build needs a CA and a policy, the card a kernel
# (QEMU's: Debian's arm64 kernel, fetched as make qemu-test does).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$cold/ca.key" \
  -out "$cold/ca.pem" -subj /CN=vantage-cold-check -days 1 2>/dev/null
echo '{"policy": {"cold-check": true}}' > "$cold/policy.json"
kernel=$(python3 - "$cold" <<'PY'
import sys
sys.path.insert(0, "ci/qemu")
import testsys
c = testsys.Cache(sys.argv[1] + "/qemu")
k, _ = c.get("kernel", "cold", testsys.build_kernel, sys.argv[1] + "/kernel.log")
print(k / "vmlinuz")
PY
)
start=$(date +%s)
VANTAGE_CACHE=$cold/cache BOARD=qemu_aarch64 SOURCES=registries HUB_URL=https://hub.example.org:8443 \
  NETWORK_CA=$cold/ca.pem POLICY=$cold/policy.json KERNEL=$kernel bash image/build-image.sh
wall=$(( $(date +%s) - start ))
echo "image-cold-check: cold build of qemu_aarch64 in $((wall / 60)) min $((wall % 60)) s"
echo "image-cold-check: disk: $(du -sh "$cold/cache" | cut -f1) in the cache ($(du -sh "$cold/cache/sources" | cut -f1) sources, $(du -sh "$cold/cache/br-out" | cut -f1) Buildroot output)"
