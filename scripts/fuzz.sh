#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30).
# Installs a nightly toolchain and cargo-fuzz when missing (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-30}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  (cd /tmp && cargo +nightly install cargo-fuzz --locked)
fi
# Build every target first: the run below filters its output, and a target
# that does not compile must fail the check, not pass it silently.
cargo +nightly fuzz build --fuzz-dir fuzz
for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
  echo "fuzz: $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" fuzz/seeds -- \
    -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|Done|==|SUMMARY|INFO: Running)' || true
  # The pipe above keeps the log short; a finding is judged by the artifact libFuzzer leaves.
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a failing input: fuzz/artifacts/$target" >&2
    exit 1
  fi
done
echo "fuzz: all targets ran without a crash"
