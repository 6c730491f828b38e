#!/usr/bin/env bash
# The fan-out benchmark: the hub alone, nginx + Nchan, Mosquitto, in one run on
# loopback. Usage: scale/bench-fanout.sh [NODES] (default 1000). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
# Every node is one TCP connection in the load generator and one in the server:
# raise the file-descriptor limit as far as this machine allows.
want=$((nodes + 4096))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || true
  hard=$(ulimit -Hn)
fi
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -Sn "$want"; else ulimit -Sn "$hard"; fi
if [ "$(ulimit -Sn)" -lt "$((nodes + 256))" ]; then
  echo "error: the open-file limit is $(ulimit -Sn), too low for $nodes nodes; raise it (ulimit -n, or LimitNOFILE) as root" >&2
  exit 1
fi
cargo build --release --locked -p vantage-bench -p vantage-hub
echo "bench-fanout: $nodes nodes, catch-up of 1000 jobs; $(nproc) CPUs, $(uname -r), open-file limit $(ulimit -Sn)" >&2
exec target/release/vantage-bench fanout --nodes "$nodes" --catchup 1000 --hub-bin target/release/vantage-hub
