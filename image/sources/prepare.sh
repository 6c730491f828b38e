#!/usr/bin/env bash
# Lays out, from the inputs fetch.sh stored, what Buildroot reads:
#   OUT/dl/<package>/<file>  byte-identical upstream files (BR2_DL_DIR; Buildroot
#                            checks them against its own .hash files)
#   OUT/ovr/<package>/       unpacked sources of another version or repack, and stubs
#   OUT/local.mk             <PKG>_OVERRIDE_SRCDIR lines and the fix-ups they need
#                            (BR2_PACKAGE_OVERRIDE_FILE)
#   prepare.sh BUILDROOT_DIR STORE OUT
# The reason for every substitution is in sources.tsv; the fix-ups below say
# why each is needed.
# shellcheck disable=SC2016,SC2028  # the stubs' configure scripts are written literally
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
br=${1:?usage: prepare.sh BUILDROOT_DIR STORE OUT}
store=${2:?usage: prepare.sh BUILDROOT_DIR STORE OUT}
out=${3:?usage: prepare.sh BUILDROOT_DIR STORE OUT}
dl=$out/dl
ovr=$out/ovr
rm -rf "$dl" "$ovr"
mkdir -p "$dl" "$ovr"

input() { # file -> its path in the store
  local sha
  sha=$(awk -F'\t' -v f="$1" '!/^#/ && $3 == f {print $4; exit}' "$here/sources.tsv")
  if [ -z "$sha" ] || [ ! -f "$store/$sha" ]; then echo "prepare: $1 is not in $store (run fetch.sh)" >&2; exit 1; fi
  echo "$store/$sha"
}

# A byte-identical file goes where Buildroot looks for it, and must pass
# Buildroot's own hash check.
identical() { # package file as
  local dir=$1 hashfile
  if [ "$dir" = pypi-sdist ]; then
    hashfile=$(grep -l " $3\$" "$br"/package/*/*.hash | head -1)
    dir=$(basename "$(dirname "$hashfile")")
  else
    hashfile=$(find "$br/package/$dir" -maxdepth 1 -name '*.hash' | head -1)
  fi
  mkdir -p "$dl/$dir"
  cp "$(input "$2")" "$dl/$dir/$3"
  bash "$br/support/download/check-hash" -q "$dl/$dir/$3" "$3" "$hashfile" \
    || { echo "prepare: $3 fails Buildroot's hash check ($hashfile)" >&2; exit 1; }
}

# Another version or a repack: unpacked; Buildroot's patches for the package
# are applied where they apply (they are written for its pinned version).
override() { # package file
  local p applied=0 skipped=0
  mkdir -p "$ovr/$1"
  tar -xf "$(input "$2")" --strip-components=1 -C "$ovr/$1"
  for p in "$br/package/$1"/*.patch; do
    [ -e "$p" ] || continue
    if patch -d "$ovr/$1" -p1 -N -s --dry-run < "$p" >/dev/null 2>&1; then
      patch -d "$ovr/$1" -p1 -N -s < "$p"; applied=$((applied + 1))
    else
      skipped=$((skipped + 1))
    fi
  done
  # Patched Makefile.am/configure.ac must not look newer than what was generated from them.
  if [ $applied -gt 0 ]; then
    sleep 1
    find "$ovr/$1" \( -name aclocal.m4 -o -name configure -o -name Makefile.in -o -name config.h.in \) -exec touch {} +
  fi
  echo "prepare: override $1 <- $2 (Buildroot patches applied $applied, not applicable $skipped)"
}

# A host tool that stands in for a package whose source no registry serves
# completely: the package's configure writes a Makefile that links the host's tool.
host_stub() { # package tool...
  local pkg=$1 t
  shift
  rm -rf "${ovr:?}/$pkg"; mkdir -p "$ovr/$pkg"; touch "$ovr/$pkg/COPYING"
  {
    echo '#!/bin/sh'
    echo 'prefix=/usr'
    echo 'for a; do case $a in --prefix=*) prefix=${a#--prefix=};; esac; done'
    echo "{ printf 'all:\\ninstall:\\n\\tmkdir -p %s/bin\\n' \"\$prefix\""
    for t in "$@"; do
      echo "  printf '\\tln -sf $(command -v "$t") %s/bin/$t\\n' \"\$prefix\""
    done
    echo '} > Makefile'
  } > "$ovr/$pkg/configure"
  chmod 755 "$ovr/$pkg/configure"
  echo "prepare: $pkg is the host's $* (Debian package of the same tool)"
}

while IFS=$'\t' read -r pkg use file _sha _from as _reason; do
  case $use in
    identical) identical "$pkg" "$file" "$as" ;;
    override) override "$pkg" "$file" ;;
  esac
done < <(grep -v '^#' "$here/sources.tsv")
echo "prepare: $(find "$dl" -type f | wc -l) identical files passed Buildroot's hash check"

# gettext-tiny's hooks copy GNU gettext files from gettext 0.22.4; Debian has 0.23.1.
g=$(mktemp -d)
tar -xf "$(input gettext_0.23.1.orig.tar.xz)" --strip-components=1 -C "$g"
for f in gettext-tools/misc/gettextize.in gettext-tools/po/Makevars.template gettext-runtime/po/boldquot.sed \
  gettext-runtime/po/en@boldquot.header gettext-runtime/po/en@quot.header gettext-runtime/po/insert-header.sin \
  gettext-runtime/po/quot.sed gettext-runtime/po/remove-potcdate.sin gettext-runtime/po/Rules-quot \
  gettext-runtime/po/Makefile.in.in COPYING; do
  if [ -f "$g/$f" ]; then src=$g/$f; else src=/dev/null; echo "prepare: gettext 0.23.1 lacks $f (empty file)"; fi
  install -D -m 0644 "$src" "$ovr/gettext-tiny/extra/$(basename "$f")"
done
install -D -m 0755 "$g/build-aux/config.rpath" "$ovr/gettext-tiny/build-aux/config.rpath"
rm -rf "$g"
# Git snapshots (libconfuse, kbd) need gettext's config.rpath and po makefile for autoreconf.
install -D -m 0755 "$ovr/gettext-tiny/build-aux/config.rpath" "$ovr/libconfuse/support/config.rpath"
install -D -m 0644 "$ovr/gettext-tiny/extra/Makefile.in.in" "$ovr/libconfuse/po/Makefile.in.in"
install -D -m 0755 "$ovr/gettext-tiny/build-aux/config.rpath" "$ovr/kbd/config/config.rpath"

# Data packages from Debian binary packages.
x=$(mktemp -d)
dpkg -x "$(input raspi-firmware_1.20240424+ds-6_all.deb)" "$x"
mkdir -p "$ovr/rpi-firmware/boot"
cp -a "$x"/usr/lib/raspi-firmware/. "$ovr/rpi-firmware/boot/"
# Debian ships neither the licence file nor overlay_map.dtb that rpi-firmware.mk installs.
touch "$ovr/rpi-firmware/boot/LICENCE.broadcom" "$ovr/rpi-firmware/boot/overlays/overlay_map.dtb"
dpkg -x "$(input wireless-regdb_2026.09.03-1~deb13u1_all.deb)" "$x"
mkdir -p "$ovr/wireless-regdb"
cp "$x/usr/lib/firmware/regulatory.db-upstream" "$ovr/wireless-regdb/regulatory.db"
cp "$x/usr/lib/firmware/regulatory.db.p7s-upstream" "$ovr/wireless-regdb/regulatory.db.p7s"
touch "$ovr/wireless-regdb/LICENSE"
rm -rf "$x"

# No registry serves fakeroot's or tzcode's source, and Debian's bison lacks the
# manual its build needs: the host's Debian tools stand in (deps.d/buildroot.list).
host_stub fakeroot fakeroot
host_stub bison bison yacc
rm -rf "$ovr/zic"; mkdir -p "$ovr/zic"; touch "$ovr/zic/LICENSE" "$ovr/zic/tzfile.h"
printf 'zic:\n\tcp /usr/sbin/zic zic\n' > "$ovr/zic/Makefile"

# systemd 257 for Buildroot's 258: systemd.mk passes -Dnspawn= and -Dlibmount=,
# options that appeared in 258; declared here so that meson accepts them.
cat >> "$ovr/systemd/meson_options.txt" <<'EOF'
# vantage (image/sources/prepare.sh): accepted and ignored; Buildroot 2026.02 passes these 258 options
option('nspawn', type : 'feature', value : 'auto')
option('libmount', type : 'feature', value : 'auto')
EOF
# kmod's git snapshot: autoreconf without gtkdocize needs the file docs/Makefile.am includes.
: > "$ovr/kmod/libkmod/docs/gtk-doc.make"
# pkgconf 1.8.1: Buildroot's sysroot-subset patch is for 2.x; the same change for 1.8.1.
patch -d "$ovr/pkgconf" -p1 -N -s < "$here/patches/pkgconf-1.8.1-sysroot-subset.patch"

{
  for d in "$ovr"/*/; do
    n=$(basename "$d")
    src=$ovr/$n
    [ "$n" = expat ] && src=$ovr/expat/expat   # Debian's expat orig is the git tree; the library is in expat/
    echo "$(echo "$n" | tr 'a-z-' 'A-Z_')_OVERRIDE_SRCDIR = $src"
  done
  echo "UTIL_LINUX_LIBS_OVERRIDE_SRCDIR = $ovr/util-linux"
  cat "$here/local.mk.in"
} > "$out/local.mk"
echo "prepare: $(grep -c OVERRIDE_SRCDIR "$out/local.mk") overrides in $out/local.mk"
