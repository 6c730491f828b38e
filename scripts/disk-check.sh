#!/usr/bin/env bash
# scripts/disk-check.sh GIB DIR...: fails, saying what to free, unless every
# DIR's file system has GIB gibibytes free. CI runs it first: a full disk
# otherwise surfaces minutes later as a compiler's "No space left on device".
set -euo pipefail
need=$1; shift
fail=0
for dir in "$@"; do
  dir=$(readlink -m "$dir")
  while [ ! -e "$dir" ]; do dir=$(dirname "$dir"); done
  free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free" -lt "$need" ]; then
    echo "error: $dir's file system has ${free} GiB free; this run needs about ${need} GiB." >&2
    fail=1
  fi
done
if [ "$fail" = 1 ]; then
  echo "       Free space first: old cargo target/ directories, out/image/, or the cache" >&2
  echo "       (${VANTAGE_CACHE:-/var/cache/vantage}; a cold cache costs a longer run). Set" >&2
  echo "       VANTAGE_MIN_FREE_GIB to change the check." >&2
  exit 1
fi
