# Sourced by the benchmarks: `raise_nofile WANT [NEED]` raises this shell's
# open-file limit (inherited by the servers it starts) towards WANT, as far as
# this machine allows, and fails with what to do if it stays below NEED.
raise_nofile() {
  local want=$1 need=${2:-0} hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null || true
    hard=$(ulimit -Hn)
  fi
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -Sn "$want"; else ulimit -Sn "$hard"; fi
  if [ "$(ulimit -Sn)" -lt "$need" ]; then
    echo "error: the open-file limit is $(ulimit -Sn), too low (at least $need needed); raise it (ulimit -n, or LimitNOFILE) as root" >&2
    return 1
  fi
}
