#!/usr/bin/env bash
# Puts every input of image/sources/sources.tsv into the content-addressed
# store STORE/<sha256>, and prints nothing but progress and errors.
#   fetch.sh STORE
# Where an input comes from, in order:
#   1. STORE itself (an earlier run kept it: the archive may have dropped it since);
#   2. the frozen mirror VANTAGE_BR_MIRROR (default: ../shared/buildroot/mirror
#      beside the repository, when it exists), found by file name;
#   3. its registry, as the table's "from" column says (Debian source or binary
#      package through a private apt state, or a PyPI sdist).
# Every file is checked against the table's sha256 before it enters the store.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
store=${1:?usage: fetch.sh STORE}
mirror=${VANTAGE_BR_MIRROR:-$repo/../shared/buildroot/mirror}
mkdir -p "$store"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Takes file $1 into the store if its hash is $2; returns 1 otherwise.
take() {
  local got
  got=$(sha_of "$1")
  if [ "$got" != "$2" ]; then
    echo "sources: $(basename "$1") has sha256 $got, the table pins $2; not used" >&2
    return 1
  fi
  cp "$1" "$store/.$2.tmp" && mv "$store/.$2.tmp" "$store/$2"
}

apt_state=""
# A private apt configuration with deb-src (and binary) lists of the suites the
# table draws from; the host's apt state stays untouched. The archive's address
# is the one this host's apt already uses.
apt_env() {
  [ -n "$apt_state" ] && return 0
  apt_state=$(mktemp -d)
  local uri
  uri=$(grep -hs -m1 -oE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        | head -1 | awk '{print $2}')
  [ -n "$uri" ] || { echo "sources: no Debian archive in /etc/apt; cannot fetch from the registry" >&2; return 1; }
  mkdir -p "$apt_state/lists/partial" "$apt_state/cache/archives/partial"
  : > "$apt_state/status"
  for s in bookworm bookworm-updates bookworm-backports trixie trixie-updates trixie-backports forky sid; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main"
    echo "deb [arch=all signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main"
  done > "$apt_state/sources.list"
  cat > "$apt_state/apt.conf" <<EOF
Dir::State "$apt_state";
Dir::State::Lists "$apt_state/lists";
Dir::State::status "$apt_state/status";
Dir::Cache "$apt_state/cache";
Dir::Etc::SourceList "$apt_state/sources.list";
Dir::Etc::SourceParts "/nonexistent";
APT::Sandbox::User "root";
EOF
  echo "sources: reading the Debian archive's source lists (private apt state)"
  # An archive in the middle of an update fails some index files; the others still serve.
  if ! APT_CONFIG=$apt_state/apt.conf apt-get -q update >"$apt_state/update.log" 2>&1; then
    echo "sources: warning: apt-get update failed for some suites; using the rest:" >&2
    grep -E '^(E|W):' "$apt_state/update.log" | head -3 >&2
  fi
  ls "$apt_state/lists/"*Sources* >/dev/null 2>&1 \
    || { echo "sources: the Debian archive gave no source lists" >&2; return 1; }
}

# Fetches one input from its registry into directory $3; prints the file's path.
from_registry() { # from file dir
  local from=$1 file=$2 dir=$3 spec
  spec=${from#*:}
  case $from in
    deb-src:*)
      [ -n "$apt_state" ] && (cd "$dir" && APT_CONFIG=$apt_state/apt.conf apt-get -q source --download-only "$spec" >"$dir/log" 2>&1) ;;
    deb:*)
      [ -n "$apt_state" ] && (cd "$dir" && APT_CONFIG=$apt_state/apt.conf apt-get -q download "$spec" >"$dir/log" 2>&1) ;;
    pypi:*)
      pip download -q --no-deps --no-binary :all: -d "$dir" "$spec" >"$dir/log" 2>&1 ;;
    vendored)
      echo "sources: $file is in no registry; it is only in the frozen mirror (VANTAGE_BR_MIRROR)" >&2; return 1 ;;
    *) echo "sources: unknown origin '$from' for $file" >&2; return 1 ;;
  esac || { echo "sources: fetching $file ($from) failed:" >&2; tail -3 "$dir/log" 2>/dev/null >&2; return 1; }
  # apt-get and pip name the file as the archive does (URL-decoded).
  [ -f "$dir/$file" ] || { echo "sources: $from did not produce $file" >&2; return 1; }
  echo "$dir/$file"
}

# First what the store and the frozen mirror hold; then, for the rest, the registries.
n=0
need=()
while IFS=$'\t' read -r _pkg _use file sha from _as _reason; do
  n=$((n + 1))
  [ -f "$store/$sha" ] && continue
  found=$(find "$mirror" -name "$file" -type f 2>/dev/null | head -1 || true)
  if [ -n "$found" ] && take "$found" "$sha"; then
    echo "sources: $file from the frozen mirror"
  else
    need+=("$file"$'\t'"$sha"$'\t'"$from")
  fi
done < <(grep -v '^#' "$here/sources.tsv")
if printf '%s\n' "${need[@]}" | grep -q $'\tdeb'; then
  apt_env || true
fi
missing=0
for row in "${need[@]}"; do
  IFS=$'\t' read -r file sha from <<<"$row"
  tmp=$(mktemp -d)
  if got=$(from_registry "$from" "$file" "$tmp") && take "$got" "$sha"; then
    echo "sources: $file from the registry ($from)"
  else
    missing=$((missing + 1))
  fi
  rm -rf "$tmp"
done
[ -n "$apt_state" ] && rm -rf "$apt_state"
if [ "$missing" -gt 0 ]; then
  echo "error: $missing of $n inputs could not be had (see above). Give a copy of the frozen mirror" >&2
  echo "       with VANTAGE_BR_MIRROR=DIR, or update image/sources/sources.tsv (docs/images.md, 'Sources')." >&2
  exit 1
fi
echo "sources: all $n inputs in $store"
