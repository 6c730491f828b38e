#!/usr/bin/env bash
# The result-ingest benchmark: NODES nodes post results to a real hub on
# loopback at once (mTLS), measured against a plain batched SQLite insert of
# the same rows on the same disk, then again with the hub killed mid-run
# (every acknowledged result must be stored). Prints a Markdown table; fails
# if an acknowledged result was lost. Usage: scripts/bench-ingest.sh [NODES]
# [PER_NODE] (defaults 1000 and 50).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
per_node=${2:-50}
# Every node is a connection here and one in the hub.
source scripts/nofile.sh
raise_nofile $((2 * nodes + 4096)) $((2 * nodes + 256))
cargo build --release --locked -p vantage-bench -p vantage-hub
echo "bench-ingest: $nodes nodes x $per_node results; $(nproc) CPUs, $(uname -r), open-file limit $(ulimit -Sn)" >&2
exec target/release/vantage-bench ingest --nodes "$nodes" --per-node "$per_node" --hub-bin target/release/vantage-hub
