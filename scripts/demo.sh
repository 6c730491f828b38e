#!/usr/bin/env bash
# make demo: a whole vantage network on this machine, offline, loopback only.
#   approvers (3 keys, 2-of-3 policy) -> hub -> fixtures (signed DNS zones, web
#   server) -> three nodes enrolled with tokens (DE, BR, JP) by vantage-provision
#   -> jobs proposed, signed twice and submitted with the vantage CLI -> results.
# KEEP=1 keeps the working directory (and prints its path) instead of deleting it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

# Bold headings on a terminal only: a log file (`make demo > log`) stays plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

bash scripts/deps.sh base fixtures
# deps.sh may just have installed rustup; its PATH change ended with it.
PATH=$HOME/.cargo/bin:$PATH
say "Building the binaries (first run: a few minutes)"
cargo build --locked --bins -p vantage-hub -p vantage-agent -p vantage-provision -p vantage-cli
bin=$top/target/debug
PATH=$bin:$PATH:/usr/sbin:/sbin

work=$(mktemp -d /tmp/vantage-demo.XXXXXX)
pids=()
cleanup() {
  status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$top/ci/fixtures/stop.sh" "$work/fixtures" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
    echo "demo: logs and state kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT INT TERM

wait_for_file() { # FILE SECONDS WHAT
  for _ in $(seq 1 $(($2 * 10))); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "demo: $3 did not start; see $work" >&2
  return 1
}

say "Approvers: three Ed25519 keys, a policy that needs two of them"
mkdir -p "$work/approvers"
for who in alice bob carol; do
  vantage keygen --out "$work/approvers/$who" >/dev/null
done
vantage policy init --network demo --threshold 2 \
  --approver alice="$work/approvers/alice.pub" \
  --approver bob="$work/approvers/bob.pub" \
  --approver carol="$work/approvers/carol.pub" \
  --out "$work/policy.json"

say "Hub on 127.0.0.1 (its own CA, SQLite job log, TLS with client certificates)"
vantage-hub --data-dir "$work/hub" init --network demo --name 127.0.0.1 >/dev/null
vantage-hub --data-dir "$work/hub" serve --listen 127.0.0.1:0 --addr-file "$work/hub.addr" \
  --policy "$work/policy.json" >"$work/hub.log" 2>&1 &
pids+=($!)
wait_for_file "$work/hub.addr" 30 "the hub"
hub_url="https://$(cat "$work/hub.addr")"
vantage-hub --data-dir "$work/hub" operator issue demo --out "$work/op" >/dev/null
export VANTAGE_HUB=$hub_url VANTAGE_CREDS=$work/op
echo "hub: $hub_url (log: $work/hub.log)"

say "Fixtures: an authoritative DNS server with a signed and a broken zone, a web server"
DNS_PORT=${DEMO_DNS_PORT:-25353} HTTP_PORT=${DEMO_HTTP_PORT:-28080} HTTPS_PORT=${DEMO_HTTPS_PORT:-28443} \
  bash ci/fixtures/start.sh "$work/fixtures" >/dev/null
# shellcheck disable=SC1091
. "$work/fixtures/fixtures.env"

say "Nodes: three volunteers' boxes, enrolled by vantage-provision with one-time tokens"
for cc in DE BR JP; do
  node=$work/node-$cc
  mkdir -p "$node/boot" "$node/data"
  token=$(vantage-hub --data-dir "$work/hub" token create --country "$cc" 2>/dev/null | head -n 1)
  printf 'hub = "%s"\ntoken = "%s"\ncountry = "%s"\ntags = ["demo"]\n' "$hub_url" "$token" "$cc" >"$node/boot/vantage.toml"
  vantage-provision --boot-dir "$node/boot" --data-dir "$node/data" --ca "$work/hub/ca.pem" \
    --wpa-conf "$node/wpa.conf" --hostname-file "$node/hostname" --once >"$node/provision.log" 2>&1
  sed -n '1,3p' "$node/boot/vantage-status.txt"
  # The demo's targets are on loopback, which a real node's owner policy refuses by default.
  cat >"$node/agent.toml" <<EOF
data_dir = "$node/data"
ca = "$work/hub/ca.pem"
policy = "$work/policy.json"
trust_anchor = "$FIXTURE_TRUST_ANCHOR"

[owner]
allow_special_addresses = true
EOF
  vantage-agent --config "$node/agent.toml" run >"$node/agent.log" 2>&1 &
  pids+=($!)
done
sleep 2
vantage nodes

run_job() { # FILE-STEM then propose arguments
  local stem=$1
  shift
  say "Proposing: vantage propose $*"
  vantage propose "$@" --proposer demo-operator --from "country=DE or country=BR or country=JP" \
    --out "$work/$stem.job.json"
  say "Two approvers sign (the nodes will check both signatures themselves)"
  vantage sign "$work/$stem.job.json" --key "$work/approvers/alice.key" --yes >/dev/null
  vantage sign "$work/$stem.job.json" --key "$work/approvers/bob.key" --yes >/dev/null
  vantage check "$work/$stem.job.json" --policy "$work/policy.json"
  local id
  # Not `tee /dev/stderr`: that reopens stderr, and when it is a file
  # (`make demo > log 2>&1`) the reopening truncates everything before it.
  local out
  out=$(vantage submit "$work/$stem.job.json")
  printf '%s\n' "$out"
  id=$(printf '%s\n' "$out" | sed -n 's/.*job \([A-Za-z0-9._-]*\).*/\1/p' | head -n 1)
  say "Results of $id"
  timeout 60 vantage watch "$id"
  vantage results "$id"
}

run_job dnssec-ok dns www.secure.test --type A --dnssec --nsid --resolver "$FIXTURE_DNS"
run_job dnssec-bogus dns www.bogus.test --type A --dnssec --resolver "$FIXTURE_DNS"
run_job web http "$FIXTURE_HTTP_URL"

say "Done: three nodes, three approved measurements, results above"
