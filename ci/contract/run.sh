#!/usr/bin/env bash
# make test-contract: Schemathesis (PyPI, pinned) generates requests from
# docs/openapi.json against a real hub on 127.0.0.1, once with an operator
# certificate and once with a node certificate, and fails on any server
# error (5xx) or any answer that does not match the document.
# Usage: ci/contract/run.sh HUB_BIN VANTAGE_BIN ST_BIN
set -euo pipefail
hub_bin=$1 vantage_bin=$2 st=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/vantage-contract.XXXXXX)
pid=
cleanup() {
  local rc=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "${failed:-0}" = 1 ]; then echo "contract: FAILED; kept $work (hub log: $work/hub.log)" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
failed=1

# A network with a policy, so signed-job bodies reach the policy check.
for who in alice bob; do "$vantage_bin" keygen --out "$work/$who" >/dev/null; done
"$vantage_bin" policy init --network contract --threshold 2 \
  --approver alice="$work/alice.pub" --approver bob="$work/bob.pub" --out "$work/policy.json" >/dev/null
"$hub_bin" --data-dir "$work/hub" init --network contract --name 127.0.0.1 >/dev/null
"$hub_bin" --data-dir "$work/hub" operator issue st --out "$work/op" >/dev/null
# A generous rate limit: Schemathesis sends thousands of requests, and a 429
# would only hide what the handlers answer.
"$hub_bin" --data-dir "$work/hub" serve --listen 127.0.0.1:0 --addr-file "$work/addr" \
  --policy "$work/policy.json" --rate 100000 --burst 100000 >"$work/hub.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
[ -s "$work/addr" ] || { cat "$work/hub.log" >&2; echo "contract: the hub did not start" >&2; exit 1; }
url="https://$(cat "$work/addr")"
ca=$work/op/ca.pem

# A node certificate: a token, an Ed25519 key and CSR from openssl, one enrolment.
token=$("$hub_bin" --data-dir "$work/hub" token create --country DE --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
openssl genpkey -algorithm ed25519 -out "$work/node.key" 2>/dev/null
openssl req -new -key "$work/node.key" -subj /CN=contract-node -out "$work/node.csr" 2>/dev/null
python3 - "$work" "$token" <<'PY' >"$work/enrol.json"
import json, sys
work, token = sys.argv[1:]
print(json.dumps({"csr": open(f"{work}/node.csr").read(), "token": token, "declared": {"country": "DE"}}))
PY
curl -sf --cacert "$ca" -H 'content-type: application/json' --data @"$work/enrol.json" "$url/v1/enrol" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["certificate"], end="")' >"$work/node.crt"

# One accepted job (two approvers sign), so job status and results answer
# with stored data; its id goes into Schemathesis' parameters.
"$vantage_bin" propose dns example.com --proposer contract --from country=DE --out "$work/job.json" >/dev/null
for who in alice bob; do "$vantage_bin" sign "$work/job.json" --key "$work/$who.key" --yes >/dev/null; done
job=$("$vantage_bin" submit "$work/job.json" --json --hub "$url" --creds "$work/op" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
{ cat "$top/ci/contract/schemathesis.toml"; printf '\n[parameters]\n"path.id" = "%s"\n' "$job"; } >"$work/schemathesis.toml"

run() { # run NAME CERT KEY
  echo "contract: Schemathesis as the $1"
  # The document under test is the one the hub serves (equal to docs/openapi.json by a unit test).
  "$st" --config-file "$work/schemathesis.toml" run "$url/v1/openapi.json" --url "$url" --tls-verify "$ca" \
    --request-cert "$2" --request-cert-key "$3" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples "${CONTRACT_EXAMPLES:-25}" --seed "${CONTRACT_SEED:-1}" \
    --max-response-time 10 --no-color \
    --exclude-path /v1/sub/{channels} --exclude-path /v1/openapi.json
}
run operator "$work/op/st.crt" "$work/op/st.key"
run node "$work/node.crt" "$work/node.key"
grep -q 'panicked' "$work/hub.log" && { echo "contract: the hub panicked" >&2; exit 1; }
failed=0
echo "contract: passed"
