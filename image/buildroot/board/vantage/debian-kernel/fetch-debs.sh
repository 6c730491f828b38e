#!/usr/bin/env bash
# Puts every Debian binary package of a Pi card's table (CARD/sources.tsv beside
# this script) into the content-addressed store STORE/<sha256>, like
# image/sources/fetch.sh does for the Buildroot inputs, and prints nothing but
# progress and errors.
#   fetch-debs.sh STORE CARD      CARD: arm64, armel or rpi5 (its card.conf names
#                                 the Debian architecture, DEB_ARCH)
# Where a package comes from, in order: the store itself (kept from an earlier
# run, even after the archive dropped it), the frozen mirror (VANTAGE_BR_MIRROR,
# by file name), then Debian for DEB_ARCH through a private apt state.
# Why not image/sources/fetch.sh: that script (arch "all", component main only)
# is part of the cache key of every registries Buildroot output; extending it
# would rebuild Buildroot from scratch (25-100 min) for a change that does not
# touch what Buildroot builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../../.." && pwd)
store=${1:?usage: fetch-debs.sh STORE CARD}
card=${2:?usage: fetch-debs.sh STORE CARD}
table=$here/$card/sources.tsv
[ -f "$table" ] || { echo "debs: no table $table (card '$card')" >&2; exit 1; }
arch=$(sed -n 's/^DEB_ARCH=//p' "$here/$card/card.conf")
[ -n "$arch" ] || { echo "debs: $here/$card/card.conf names no DEB_ARCH" >&2; exit 1; }
mirror=${VANTAGE_BR_MIRROR:-$repo/../shared/buildroot/mirror}
mkdir -p "$store"

take() { # file sha256: into the store if the bytes are the pinned ones
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "debs: $(basename "$1") has sha256 $got, $table pins $2; not used" >&2
    return 1
  fi
  cp "$1" "$store/.$2.tmp" && mv "$store/.$2.tmp" "$store/$2"
}

apt_state=
cleanup() { [ -z "$apt_state" ] || rm -rf "$apt_state"; }
trap cleanup EXIT
# DEB_ARCH's package lists of the suites the tables draw from, in an apt state of
# its own (the host's dpkg and apt stay untouched, no multiarch needed). The
# archive's address is the one this host's apt already uses.
apt_env() {
  [ -n "$apt_state" ] && return 0
  apt_state=$(mktemp -d)
  local uri sec
  uri=$(grep -hs -m1 -oE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        | head -1 | awk '{print $2}')
  [ -n "$uri" ] || { echo "debs: no Debian archive in /etc/apt (sources.list); cannot fetch from the registry" >&2; return 1; }
  sec=$(grep -hs -m1 -oE '^(URIs:|deb) +[a-z]+://[^ ]+/debian-security/?' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        | head -1 | awk '{print $2}')
  sec=${sec:-${uri%/debian*}/debian-security}
  mkdir -p "$apt_state/lists/partial" "$apt_state/cache/archives/partial"
  : > "$apt_state/status"
  local key=/usr/share/keyrings/debian-archive-keyring.gpg
  {
    for s in bookworm bookworm-updates trixie trixie-backports; do
      echo "deb [signed-by=$key] $uri $s main non-free-firmware"
    done
    for s in bookworm-security trixie-security; do
      echo "deb [signed-by=$key] $sec $s main non-free-firmware"
    done
  } > "$apt_state/sources.list"
  cat > "$apt_state/apt.conf" <<EOF
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Dir::State "$apt_state";
Dir::State::Lists "$apt_state/lists";
Dir::State::status "$apt_state/status";
Dir::Cache "$apt_state/cache";
Dir::Etc::SourceList "$apt_state/sources.list";
Dir::Etc::SourceParts "/nonexistent";
APT::Sandbox::User "root";
EOF
  echo "debs: reading the Debian archive's $arch package lists (private apt state)"
  if ! APT_CONFIG=$apt_state/apt.conf apt-get -q update >"$apt_state/update.log" 2>&1; then
    echo "debs: warning: apt-get update failed for some suites; using the rest:" >&2
    grep -E '^(E|W):' "$apt_state/update.log" | head -3 >&2
  fi
}

n=0 missing=0
while IFS=$'\t' read -r _pkg _use file sha from _as _reason; do
  n=$((n + 1))
  [ -f "$store/$sha" ] && continue
  found=$(find "$mirror" -name "$file" -type f 2>/dev/null | head -1 || true)
  if [ -n "$found" ] && take "$found" "$sha"; then
    echo "debs: $file from the frozen mirror"
    continue
  fi
  case $from in
    deb:*) ;;
    *) echo "debs: $file: unknown origin '$from' (deb:PKG=VERSION only)" >&2; missing=$((missing + 1)); continue ;;
  esac
  tmp=$(mktemp -d)
  # apt-get names the file as the archive's index does (an epoch's colon as %3a).
  if apt_env && (cd "$tmp" && APT_CONFIG=$apt_state/apt.conf apt-get -q download "${from#deb:}" >"$tmp/log" 2>&1) \
     && [ -f "$tmp/$file" ] && take "$tmp/$file" "$sha"; then
    echo "debs: $file from the registry ($from)"
  else
    echo "debs: fetching $file ($from) failed:" >&2
    tail -3 "$tmp/log" 2>/dev/null >&2 || true
    missing=$((missing + 1))
  fi
  rm -rf "$tmp"
done < <(grep -v '^#' "$table")
if [ "$missing" -gt 0 ]; then
  echo "error: $missing of $n packages of $table could not be had (see above). Debian drops" >&2
  echo "       superseded kernels from the archive: give a store or mirror that keeps them" >&2
  echo "       (VANTAGE_CACHE, VANTAGE_BR_MIRROR), or move the table to the current version" >&2
  echo "       (docs/images.md, 'Pi 3/4 cards', 'Pi Zero/1 card' and 'Pi 5 card from registries')." >&2
  exit 1
fi
echo "debs: all $n packages in $store"
