#!/usr/bin/env bash
# The fan-out benchmark: the hub alone, nginx + Nchan, Mosquitto, in one run on
# loopback. Usage: scale/bench-fanout.sh [NODES] (default 1000). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
# Every node is one TCP connection in the load generator and one in the server:
# raise the file-descriptor limit as far as this machine allows.
source scripts/nofile.sh
raise_nofile $((nodes + 4096)) $((nodes + 256))
cargo build --release --locked -p vantage-bench -p vantage-hub
echo "bench-fanout: $nodes nodes, catch-up of 1000 jobs; $(nproc) CPUs, $(uname -r), open-file limit $(ulimit -Sn)" >&2
exec target/release/vantage-bench fanout --nodes "$nodes" --catchup 1000 --hub-bin target/release/vantage-hub
