#!/usr/bin/env bash
# Installs what a make target needs, idempotently. Usage: deps.sh GROUP...
# Groups: base (Rust toolchain, C compiler), and those the mk/*.mk files name.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A APT=(
  [base]="build-essential pkg-config ca-certificates curl file"
)
# Areas register extra groups in scripts/deps.d/<group>.list (one apt package a line).
for f in scripts/deps.d/*.list; do
  [ -e "$f" ] || continue
  APT[$(basename "$f" .list)]="$(grep -v '^#' "$f" | tr '\n' ' ')"
done

need_root() {
  echo "error: missing packages: $1" >&2
  echo "run as root:  sudo bash scripts/deps.sh $2   (or: sudo apt-get install -y $1), then re-run make" >&2
  exit 1
}

missing=()
for group in "$@"; do
  for p in ${APT[$group]:-}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || need_root "${missing[*]}" "$*"
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt run (unattended upgrades, a parallel make) instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The agent's and the CLI's tests reach their test hub as https://localhost:PORT
# (the name in its certificate). A minimal root (debootstrap, some containers)
# may have no /etc/hosts, and then that name does not resolve.
if [[ " $* " == *" fixtures "* ]] && ! getent hosts localhost >/dev/null; then
  [ "$(id -u)" = 0 ] || {
    echo "error: the name localhost does not resolve; the tests need it (add '127.0.0.1 localhost' to /etc/hosts as root)" >&2
    exit 1
  }
  echo "deps: localhost does not resolve; adding it to /etc/hosts"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>/etc/hosts
fi

if ! command -v rustup >/dev/null && [ -x "$HOME/.cargo/bin/rustup" ]; then
  export PATH=$HOME/.cargo/bin:$PATH
fi
if ! command -v rustup >/dev/null; then
  # rustup-init straight from Rust's distribution server, checked against its
  # published SHA-256: what the sh.rustup.rs script fetches too, without
  # depending on that second host (some networks reach only the first).
  dist=https://static.rust-lang.org/rustup/dist/$(uname -m)-unknown-linux-gnu
  echo "deps: rustup not found; installing it from $dist (minimal profile)"
  tmp=$(mktemp -d)
  if curl --proto '=https' --tlsv1.2 -sSf -o "$tmp/rustup-init" "$dist/rustup-init" \
     && curl --proto '=https' --tlsv1.2 -sSf -o "$tmp/rustup-init.sha256" "$dist/rustup-init.sha256" \
     && (cd "$tmp" && echo "$(cut -d' ' -f1 rustup-init.sha256)  rustup-init" | sha256sum -c --quiet -); then
    chmod +x "$tmp/rustup-init"
    "$tmp/rustup-init" -y --no-modify-path --profile minimal --default-toolchain none >/dev/null
  fi
  rm -rf "$tmp"
  [ -x "$HOME/.cargo/bin/rustup" ] \
    || { echo "error: could not install rustup from $dist; install it (https://rustup.rs), then re-run" >&2; exit 1; }
  export PATH=$HOME/.cargo/bin:$PATH
fi
# rust-toolchain.toml pins the toolchain, its components and both ARM targets.
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1 \
   || ! rustup target list --installed --toolchain "$toolchain" | grep -q arm-unknown-linux-musleabihf; then
  echo "deps: installing Rust $toolchain with its components and targets"
  rustup toolchain install "$toolchain" --profile minimal -c clippy,rustfmt \
    --target aarch64-unknown-linux-musl --target arm-unknown-linux-musleabihf
fi
