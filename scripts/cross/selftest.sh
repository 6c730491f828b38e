#!/usr/bin/env bash
# The self-test of one target's binaries under QEMU user mode, on loopback only:
#  1. a hub (vantage-hub, built for this machine) with a fresh network CA on
#     127.0.0.1, and the agent's DNS fixture (ci/fixtures/start.sh: nsd with
#     signed zones on 127.0.0.1);
#  2. the target's vantage-provision enrols with the hub under QEMU (its key,
#     CSR and TLS run on the emulated CPU) using a one-time token;
#  3. the target's vantage-agent selftest under QEMU: key + CSR generation, a
#     DNS query to the fixture, an mTLS request to the hub with the node
#     certificate from step 2.
# Usage: selftest.sh "QEMU [OPTIONS]" BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
read -r -a qemu <<<"${1:?usage: selftest.sh QEMU BIN_DIR}"
bindir=${2:?usage: selftest.sh QEMU BIN_DIR}

bash scripts/deps.sh fixtures >&2
cargo build --quiet --locked -p vantage-hub >&2
hub_bin=$PWD/target/debug/vantage-hub

work=$(mktemp -d)
hub_pid=
cleanup() {
  local rc=$?
  if [ -n "$hub_pid" ]; then
    kill "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  bash ci/fixtures/stop.sh "$work/fixtures" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

bash ci/fixtures/start.sh "$work/fixtures" >/dev/null
# shellcheck disable=SC1091 # written by start.sh
. "$work/fixtures/fixtures.env"

hub() { "$hub_bin" --data-dir "$work/hub" "$@"; }
hub init --network selftest --name 127.0.0.1 >/dev/null
# The binary itself in the background (not the function, whose subshell would
# leave the hub running when killed).
"$hub_bin" --data-dir "$work/hub" serve --listen 127.0.0.1:0 --addr-file "$work/hub.addr" >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/hub.addr" ] && break; sleep 0.1; done
[ -s "$work/hub.addr" ] || { echo "hub did not start:"; cat "$work/hub.log"; exit 1; }
url="https://$(cat "$work/hub.addr")"
echo "hub on $url, DNS fixture on $FIXTURE_DNS"

mkdir -p "$work/boot" "$work/data"
cat > "$work/boot/vantage.toml" <<EOF
hub = "$url"
token = "$(hub token create --country DE 2>/dev/null)"
country = "DE"
EOF
if ! out=$("${qemu[@]}" "$bindir/vantage-provision" --once \
      --boot-dir "$work/boot" --data-dir "$work/data" --ca "$work/hub/ca.pem" \
      --wpa-conf "$work/wpa_supplicant.conf" --hostname-file "$work/hostname" 2>&1); then
  echo "vantage-provision could not enrol:"; echo "$out"
  echo "status file:"; cat "$work/boot/vantage-status.txt" 2>/dev/null || true
  echo "hub log:"; tail -20 "$work/hub.log"
  exit 1
fi
echo "vantage-provision enrolled under ${qemu[*]}: $(find "$work/data" -maxdepth 1 -type f -printf "%f ")"

"${qemu[@]}" "$bindir/vantage-agent" selftest \
  --dns "$FIXTURE_DNS" --name "$FIXTURE_SECURE_NAME" \
  --hub "$url" --ca "$work/hub/ca.pem" --cert "$work/data/cert.pem" --key "$work/data/key.pem"
