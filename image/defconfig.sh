#!/usr/bin/env bash
# defconfig.sh BOARD [FRAGMENT...]: prints the whole Buildroot defconfig of a board,
# its configs/vantage_<board>_defconfig followed by the shared fragments
# (board/vantage/common.fragment; pi.fragment for the Raspberry Pi boards) and
# then the given fragments (image/sources' for a build from package registries).
# Kconfig takes the last assignment of a symbol, so later fragments win.
set -euo pipefail
br=$(cd "$(dirname "$0")/buildroot" && pwd)
board=${1:?usage: defconfig.sh BOARD [FRAGMENT...]}
shift
cfg=$br/configs/vantage_${board}_defconfig
[ -f "$cfg" ] || { echo "defconfig.sh: no board '$board' ($cfg)" >&2; exit 1; }
cat "$cfg" "$br/board/vantage/common.fragment"
case $board in rpi*) cat "$br/board/vantage/pi.fragment" ;; esac
for f in "$@"; do cat "$f"; done
