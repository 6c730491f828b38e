#!/usr/bin/env bash
# make agent-check: checks what make agent built (out/bin/<target>/), as CI does.
#  - `file` says statically linked and the right architecture; no dynamic section;
#  - no path of this machine inside the binaries (reproducible across machines);
#  - each binary runs under QEMU on the oldest CPU of its boards: ARMv6 under
#    -cpu arm1176 (Pi Zero/1: any ARMv7 instruction dies with SIGILL), aarch64
#    under -cpu cortex-a53 (Pi 3, Zero 2 W);
#  - the agent's self-test under the same CPUs: key + CSR generation, a DNS query
#    to a loopback server, an mTLS request to a loopback hub;
#  - sizes printed; each binary at most BUDGET bytes (6 MiB).
# SELFTEST=require (default) makes a missing self-test subcommand an error;
# SELFTEST=auto reports it as SKIP (for builds of older agents).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-out/bin}
BUDGET=${BUDGET:-$((6 * 1024 * 1024))}
SELFTEST=${SELFTEST:-require}
BINS=(vantage-agent vantage-provision)
declare -A FILE_ARCH=(
  [aarch64-unknown-linux-musl]="ELF 64-bit LSB .*ARM aarch64"
  [arm-unknown-linux-musleabihf]="ELF 32-bit LSB .*ARM, EABI5"
)
declare -A QEMU=(
  [aarch64-unknown-linux-musl]="qemu-aarch64-static -cpu cortex-a53"
  [arm-unknown-linux-musleabihf]="qemu-arm-static -cpu arm1176"
)
TARGETS=${TARGETS:-"${!FILE_ARCH[*]}"}

bash scripts/deps.sh cross
passed=0 failed=0 skipped=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
indent() { while IFS= read -r line; do echo "     $line"; done <<<"$1"; }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }

# The ARMv6 check must be able to fail: one ARMv7 instruction (movw) runs
# under cortex-a7 and dies with SIGILL under arm1176.
canary=$(mktemp -d)
printf 'int main(void) { int r; __asm__ volatile("movw %%0, #42" : "=r"(r)); return r; }\n' > "$canary/v7.c"
arm-linux-gnueabihf-gcc -O2 -static -march=armv7-a+fp -marm -o "$canary/v7" "$canary/v7.c"
rc_a7=$( { qemu-arm-static -cpu cortex-a7 "$canary/v7"; echo $?; } 2>/dev/null)
rc_v6=$( { qemu-arm-static -cpu arm1176 "$canary/v7"; echo $?; } 2>/dev/null)
rm -rf "$canary"
if [ "$rc_a7" -eq 42 ] && [ "$rc_v6" -eq 132 ]; then
  ok "canary: an ARMv7 instruction runs under -cpu cortex-a7 and dies with SIGILL under -cpu arm1176"
else
  bad "canary: ARMv7 code gave $rc_a7 under cortex-a7 (want 42) and $rc_v6 under arm1176 (want 132, SIGILL)"
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
printf '%-32s %-18s %10s %8s\n' target binary bytes MiB > /tmp/vantage-sizes.$$
for t in $TARGETS; do
  for b in "${BINS[@]}"; do
    f="$OUT/$t/$b"
    [ -x "$f" ] || { bad "$f missing: run make agent"; continue; }
    desc=$(file -b "$f")
    if [[ $desc =~ ${FILE_ARCH[$t]} ]] && [[ $desc == *"statically linked"* ]]; then
      ok "$t/$b: $(cut -d, -f1-3 <<<"$desc"), statically linked"
    else
      bad "$t/$b: file says: $desc"
    fi
    if readelf -d "$f" 2>&1 | grep -q 'no dynamic section'; then
      ok "$t/$b: no dynamic section (no interpreter, no shared libraries)"
    else
      bad "$t/$b: has a dynamic section: $(readelf -d "$f" | grep NEEDED | tr -s ' ' | tr '\n' ';')"
    fi
    leaks=()
    for p in "$cargo_home" "$PWD" "$HOME"; do
      grep -q -a -F "$p/" "$f" && leaks+=("$p")
    done
    if [ ${#leaks[@]} -eq 0 ]; then ok "$t/$b: no host paths inside"; else bad "$t/$b: contains host paths: ${leaks[*]}"; fi
    size=$(stat -c %s "$f")
    awk -v t="$t" -v b="$b" -v s="$size" 'BEGIN { printf "%-32s %-18s %10d %8.2f\n", t, b, s, s / 1048576 }' >> /tmp/vantage-sizes.$$
    if [ "$size" -le "$BUDGET" ]; then ok "$t/$b: $size bytes <= budget $BUDGET"; else bad "$t/$b: $size bytes > budget $BUDGET"; fi
    # shellcheck disable=SC2086 # QEMU holds the emulator and its options
    if v=$(${QEMU[$t]} "$f" --version 2>&1); then
      ok "$t/$b: runs under ${QEMU[$t]}: $v"
    else
      bad "$t/$b: under ${QEMU[$t]}: $v"
    fi
  done
done

# The self-test needs a loopback hub (vantage-hub, built for this machine) and a
# loopback DNS server (ci/fixtures); scripts/cross/selftest.sh runs them.
for t in $TARGETS; do
  # shellcheck disable=SC2086
  if ${QEMU[$t]} "$OUT/$t/vantage-agent" selftest --help 2>/dev/null | grep -q -- --dns; then
    if log=$(bash scripts/cross/selftest.sh "${QEMU[$t]}" "$OUT/$t" 2>&1); then
      ok "$t/vantage-agent: self-test under ${QEMU[$t]}"
      indent "$log"
    else
      bad "$t/vantage-agent: self-test under ${QEMU[$t]}:"
      indent "$log"
    fi
  elif [ "$SELFTEST" = require ]; then
    bad "$t/vantage-agent: has no 'selftest' subcommand"
  else
    skip "$t/vantage-agent: no 'selftest' subcommand in this build yet (SELFTEST=require makes this an error)"
  fi
done

echo "sizes (budget $BUDGET bytes each):"
cat /tmp/vantage-sizes.$$; rm -f /tmp/vantage-sizes.$$
echo "agent-check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
