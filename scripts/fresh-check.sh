#!/usr/bin/env bash
# make fresh-check: what a newcomer sees. Builds a clean Debian 12 root with
# mmdebstrap (no Rust, no ~/.cargo, no /etc/hosts), copies the committed tree
# into it and runs `make demo` there, once, with its output in a log file.
# Needs root and the Internet; takes a long time; not part of `make test`.
# KEEP=1 keeps the root (and prints its path).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

[ "$(id -u)" = 0 ] || { echo "error: fresh-check needs root (mmdebstrap, chroot)" >&2; exit 1; }
bash scripts/deps.sh fresh

root=$(mktemp -d /tmp/vantage-fresh.XXXXXX)
log=$root.log
mounted=()
cleanup() {
  status=$?
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -R "${mounted[$i]}" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
    echo "fresh-check: root kept in $root, log in $log"
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT

echo "fresh-check: making a Debian 12 root in $root"
mmdebstrap --variant=apt --include=ca-certificates,make,git,procps bookworm "$root" >/dev/null
# The issue this guards against: tests that resolve "localhost" fail on a machine without it.
rm -f "$root/etc/hosts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Local CAs of this host (for instance a TLS-inspecting egress proxy's) belong
# to the network the clean machine is on, not to the machine's state: without
# them no HTTPS download works from behind such a proxy.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
mkdir -p "$root/root/vantage"
git -C "$top" archive --format=tar HEAD | tar -x -C "$root/root/vantage"
for fs in proc sys dev; do
  mount --rbind "/$fs" "$root/$fs"
  mounted+=("$root/$fs")
done

echo "fresh-check: running make demo in it (log: $log)"
# One invocation, as a newcomer would: it must install rustup and still finish,
# and the log must hold every step, not just the last one.
if chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c 'cd /root/vantage && make demo' >"$log" 2>&1; then
  grep -q "Building the binaries" "$log" \
    || { echo "fresh-check: FAILED: the log lost the start of the demo" >&2; exit 1; }
  echo "fresh-check: passed; make demo ran to the end in one go"
else
  tail -n 30 "$log" >&2
  echo "fresh-check: FAILED: make demo did not finish (log: $log)" >&2
  exit 1
fi
