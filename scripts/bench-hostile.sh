#!/usr/bin/env bash
# The flood benchmark: a real hub on loopback with its default limits, one
# attack at a time from many 127.0.0.x addresses, the operator's request
# latency measured under each next to a no-attack baseline. Prints a Markdown
# table; fails if any operator request failed. Usage: scripts/bench-hostile.sh
# [extra vantage-bench hostile options].
set -euo pipefail
cd "$(dirname "$0")/.."
# Each attack connection is a descriptor here and one in the hub (a child,
# which inherits the limit).
source scripts/nofile.sh
raise_nofile 8192
cargo build --release --locked -p vantage-bench -p vantage-hub
echo "bench-hostile: $(nproc) CPUs, $(uname -r), open-file limit $(ulimit -Sn)" >&2
exec target/release/vantage-bench hostile --hub-bin target/release/vantage-hub "$@"
