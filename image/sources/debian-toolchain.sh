#!/usr/bin/env bash
# debian-toolchain.sh OUT TRIPLE: a relocated copy of one of Debian 12's cross
# toolchains (gcc-TRIPLE, g++-TRIPLE, libc6-dev-ARCH-cross), laid out so that
# Buildroot accepts it as a custom external toolchain. TRIPLE is Debian's:
#   aarch64-linux-gnu   arm64, the Pi 3/4/Zero 2 W root file system
#   arm-linux-gnueabi   armel (ARMv5TE code, EABI soft-float calling convention),
#                       the Pi Zero/1 root file system (docs/images.md: the ARMv6 card)
# The steps:
#  - gcc-cross/TRIPLE is copied (not linked), so the driver's relative paths stay inside OUT;
#  - the sysroot gets usr/include and usr/lib, the layout Buildroot expects (Debian's
#    cross sysroot has include/ and lib/ at its top);
#  - the gcc/g++/cpp drivers are wrapped only to hide --with-sysroot=/ from `gcc -v`,
#    which Buildroot's check_unusable_toolchain (toolchain/helpers.mk) rejects as a
#    distribution toolchain. That check protects against a host sysroot leaking into
#    the build; here the sysroot is this relocated copy, which Buildroot passes itself.
# Why Debian's and not Bootlin's: no registry serves Bootlin's toolchains; Debian's
# cross gcc 12 / glibc 2.36 are security-maintained (docs/images.md, "Toolchain").
# shellcheck disable=SC2016  # the driver wrappers are written literally
set -euo pipefail
out=${1:?usage: debian-toolchain.sh OUT TRIPLE}
T=${2:?usage: debian-toolchain.sh OUT TRIPLE}
if [ ! -d "/usr/lib/gcc-cross/$T" ] || [ ! -d "/usr/$T/lib" ]; then
  echo "debian-toolchain: no Debian cross toolchain for $T (scripts/deps.d/buildroot.list)" >&2; exit 1
fi
X=$out/usr
rm -rf "$out"
mkdir -p "$X/bin" "$X/lib/gcc-cross" "$X/$T/usr" "$X/$T/bin"
cp -a "/usr/lib/gcc-cross/$T" "$X/lib/gcc-cross/"
cp -a "/usr/$T/include" "/usr/$T/lib" "$X/$T/"
for t in "/usr/$T/bin/"*; do ln -s "$t" "$X/$T/bin/"; done
cp -al "$X/$T/include" "$X/$T/usr/include"
cp -al "$X/$T/lib" "$X/$T/usr/lib"
for t in "/usr/bin/$T-"*; do
  b=$(basename "$t")
  case $b in
    *-gcc-12|*-g++-12|*-cpp-12)
      cp "$(readlink -f "$t")" "$X/bin/$b.real"
      printf '#!/bin/sh\nif [ "$#" = 1 ] && [ "$1" = -v ]; then %s.real -v 2>&1 | sed "s| --with-sysroot=/ | |" >&2; exit 0; fi\nexec %s.real "$@"\n' \
        "$X/bin/$b" "$X/bin/$b" > "$X/bin/$b"
      chmod 755 "$X/bin/$b" ;;
    *-gcc|*-g++|*-cpp) ;;
    *) ln -s "$t" "$X/bin/$b" ;;
  esac
done
for b in gcc g++ cpp; do ln -s "$T-$b-12" "$X/bin/$T-$b"; done
# Debian's libc.so/libm.so linker scripts name /usr/TRIPLE/lib/...; inside
# Buildroot's sysroot ld would look for that path under the sysroot. Bare names are
# searched in the library path.
grep -l GROUP "$X/$T"/lib/*.so "$X/$T"/usr/lib/*.so | while read -r f; do
  sed -i "s|/usr/$T/lib/||g" "$f"
done
echo "debian-toolchain: $(du -sh "$out" | cut -f1) in $out ($("$X/bin/$T-gcc" -dumpfullversion))"
