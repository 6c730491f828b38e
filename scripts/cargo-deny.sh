#!/usr/bin/env bash
# Runs a pinned cargo-deny, installing it first if needed: `cargo install
# --locked` from crates.io into a directory named by its version, so a new
# pin installs beside the old one and nothing else is ever downloaded.
# Usage: cargo-deny.sh ARGS...   (e.g. check bans licenses sources)
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
# /var/cache/vantage outlives fresh clones on CI machines; users who cannot
# write there keep the tool in their own cache. VANTAGE_TOOLS overrides both.
tools=${VANTAGE_TOOLS:-}
if [ -z "$tools" ]; then
  tools=/var/cache/vantage/tools
  mkdir -p "$tools" 2>/dev/null && [ -w "$tools" ] || tools=$HOME/.cache/vantage/tools
fi
root=$tools/cargo-deny-$version
if [ ! -x "$root/bin/cargo-deny" ]; then
  echo "deps: installing cargo-deny $version into $root (once; a few minutes)"
  mkdir -p "$tools"
  cargo install --quiet --locked --version "$version" --root "$root" cargo-deny
fi
exec "$root/bin/cargo-deny" --log-level warn "$@"
