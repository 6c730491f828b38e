#!/usr/bin/env bash
# make agent: static release binaries of vantage-agent and vantage-provision for
# the Raspberry Pi targets, copied to out/bin/<target>/.
#   TARGETS  space-separated Rust targets (default: both Pi targets)
#   CROSS    "cargo" (default: Debian cross gcc + rustup targets, no Docker) or
#            "cross" (cross-rs, needs Docker; see Cross.toml)
#   OUT      output directory (default: out/bin)
#   BINS     the binaries (default: vantage-agent vantage-provision)
#   FEATURES cargo features, e.g. vantage-agent/fail-after-start (default: none)
#   CARGO_TARGET_DIR  cargo's target directory (default: target)
#   VANTAGE_VERSION   the agent's version string (default: the crate's)
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGETS=${TARGETS:-"aarch64-unknown-linux-musl arm-unknown-linux-musleabihf"}
CROSS=${CROSS:-cargo}
OUT=${OUT:-out/bin}
read -r -a BINS <<< "${BINS:-vantage-agent vantage-provision}"
target_dir=${CARGO_TARGET_DIR:-target}

# Host paths end up in panic locations of dependencies; map them to fixed names
# so that every machine produces the same bytes.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
remap="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$PWD=/vantage"

# Build time baked into a binary (vantage-provision's clock check) comes from
# the last commit, not the clock of the build machine.
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && epoch=$(git log -1 --format=%ct 2>/dev/null); then
  export SOURCE_DATE_EPOCH=$epoch
fi

target_args=()
for t in $TARGETS; do
  target_args+=(--target "$t")
  # Per-target variable: host build scripts and the host build keep their fingerprint.
  var="CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  export "$var=$remap"
done

case "$CROSS" in
  cargo)
    bash scripts/deps.sh base cross
    builder=(cargo build)
    ;;
  cross)
    command -v cross >/dev/null || { echo "error: CROSS=cross needs cross-rs (cargo install cross) and Docker" >&2; exit 1; }
    # cross-rs mounts the workspace at /project inside its container.
    for t in $TARGETS; do
      var="CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
      export "$var=$remap --remap-path-prefix=/project=/vantage"
    done
    builder=(cross build)
    ;;
  *) echo "error: CROSS must be cargo or cross, not '$CROSS'" >&2; exit 64 ;;
esac

pkg_args=()
for b in "${BINS[@]}"; do pkg_args+=(-p "$b"); done
if [ -n "${FEATURES:-}" ]; then pkg_args+=(--features "$FEATURES"); fi

start=$(date +%s)
if [ "$CROSS" = cross ]; then
  # cross-rs builds one target per invocation.
  for t in $TARGETS; do "${builder[@]}" --release --locked --target "$t" "${pkg_args[@]}"; done
else
  "${builder[@]}" --release --locked "${target_args[@]}" "${pkg_args[@]}"
fi
echo "make agent: built in $(( $(date +%s) - start )) s"

for t in $TARGETS; do
  mkdir -p "$OUT/$t"
  for b in "${BINS[@]}"; do
    install -m 0755 "$target_dir/$t/release/$b" "$OUT/$t/$b"
  done
  (cd "$OUT/$t" && sha256sum "${BINS[@]}" > SHA256SUMS)
  echo "== $OUT/$t"
  for b in "${BINS[@]}"; do printf '  %-20s %9d bytes\n' "$b" "$(stat -c %s "$OUT/$t/$b")"; done
done
