#!/usr/bin/env bash
# The reconnect storm: NODES nodes subscribed to a real hub on loopback (each
# from its own 127.x address, with its own certificate, reconnecting as the
# agent does); the hub restarted, then killed with SIGKILL, a job appended to
# its log while it is down. Prints a Markdown table and the curves of
# subscribed nodes; fails if any node did not come back with the job.
# Usage: scripts/bench-storm.sh [NODES] [more vantage-bench storm options]
# (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
shift || true
# Every node is a connection here and one in the hub.
source scripts/nofile.sh
raise_nofile $((nodes + 4096)) $((nodes + 256))
cargo build --release --locked -p vantage-bench -p vantage-hub
echo "bench-storm: $nodes nodes; $(nproc) CPUs, $(uname -r), open-file limit $(ulimit -Sn)" >&2
exec target/release/vantage-bench storm --nodes "$nodes" --hub-bin target/release/vantage-hub "$@"
