#!/usr/bin/env bash
# make test-console: the operator's console in a real headless Chromium
# (Debian's, driven by playwright-core from npm) against a real hub on
# 127.0.0.1 with five enrolled nodes in five countries running the real
# agent, measuring a web server on loopback. The browser test itself is
# console/test/console.test.mjs; its screenshots go to $OUT/screenshots.
# Usage: ci/console/run.sh BIN_DIR OUT
set -euo pipefail
bin=$(cd "$1" && pwd)
out=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out"
mkdir -p "$out"
work=$(cd "$out" && pwd)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$rc" = 0 ] || echo "console test: FAILED; logs and screenshots in $work" >&2
  exit "$rc"
}
trap cleanup EXIT
wait_for_file() { # FILE WHAT
  for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "console test: $2 did not start; see $work" >&2
  return 1
}

for who in alice bob; do "$bin/vantage" keygen --out "$work/$who" >/dev/null; done
"$bin/vantage" policy init --network console --threshold 2 \
  --approver alice="$work/alice.pub" --approver bob="$work/bob.pub" --out "$work/policy.json" >/dev/null
"$bin/vantage-hub" --data-dir "$work/hub" init --network console --name 127.0.0.1 >/dev/null
"$bin/vantage-hub" --data-dir "$work/hub" serve --listen 127.0.0.1:0 --addr-file "$work/hub.addr" \
  --policy "$work/policy.json" >"$work/hub.log" 2>&1 &
pids+=($!)
wait_for_file "$work/hub.addr" "the hub"
hub_url="https://$(cat "$work/hub.addr")"
"$bin/vantage-hub" --data-dir "$work/hub" operator issue console --out "$work/op" >/dev/null

# The measured web server: Python's, on a free loopback port, serving one page.
mkdir -p "$work/www"
echo '<!doctype html><title>console test</title><p>measured' >"$work/www/index.html"
(cd "$work/www" && exec python3 -c '
import http.server, socketserver, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Quiet) as s:
    open(sys.argv[1], "w").write(str(s.server_address[1]))
    s.serve_forever()
' "$work/web.port") >/dev/null 2>&1 &
pids+=($!)
wait_for_file "$work/web.port" "the web server"

# Five nodes, one per country and network, enrolled with tokens by vantage-provision.
asn=64500
declare -A continent=([DE]=EU [FR]=EU [US]=NA [JP]=AS [BR]=SA)
for cc in DE FR US JP BR; do
  node=$work/node-$cc
  mkdir -p "$node/boot" "$node/data"
  asn=$((asn + 1))
  token=$("$bin/vantage-hub" --data-dir "$work/hub" token create --country "$cc" --continent "${continent[$cc]}" --asn "$asn" 2>/dev/null | head -n 1)
  printf 'hub = "%s"\ntoken = "%s"\ncountry = "%s"\ntags = ["console-test"]\n' "$hub_url" "$token" "$cc" >"$node/boot/vantage.toml"
  "$bin/vantage-provision" --boot-dir "$node/boot" --data-dir "$node/data" --ca "$work/hub/ca.pem" \
    --wpa-conf "$node/wpa.conf" --hostname-file "$node/hostname" --once >"$node/provision.log" 2>&1
  cat >"$node/agent.toml" <<EOT
data_dir = "$node/data"
ca = "$work/hub/ca.pem"
policy = "$work/policy.json"

[owner]
allow_special_addresses = true
EOT
  "$bin/vantage-agent" --config "$node/agent.toml" run >"$node/agent.log" 2>&1 &
  pids+=($!)
done

cd "$top/console"
VANTAGE_BIN="$bin/vantage" VANTAGE_HUB="$hub_url" VANTAGE_CREDS="$work/op" VANTAGE_POLICY="$work/policy.json" \
  CONSOLE_WORK="$work" CONSOLE_TARGET="http://127.0.0.1:$(cat "$work/web.port")/" CONSOLE_NODES=5 \
  node --test --test-reporter=spec test/
