#!/usr/bin/env bash
# The aarch64 kernels (Sources/CPhi4Kernels/kernels_neon.c) checked without an ARM machine: the C
# kernels and Tests/Kernels/kernel_check.c are cross-compiled with Debian's aarch64 toolchain and
# run under qemu-aarch64 twice, as a Cortex-A53 (ARMv8.0: Advanced SIMD, no dot-product
# extension; the plain NEON kernels must run and the dot-product ones be skipped) and as qemu's
# "max" CPU (with the dot-product extension: both must run). Each run compares every kernel it
# can run with the scalar path bit for bit. This checks correctness only: no ARM speed can be
# measured under an emulator. Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user
# (`bash scripts/install-deps.sh --test` installs them). Part of `make test` (scripts/test-c.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$CC" -O2 -pthread -static -Wno-unknown-pragmas -I Sources/CPhi4Kernels/include Tests/Kernels/kernel_check.c \
    Sources/CPhi4Kernels/*.c -lm -o "$OUT/kernel_check"
fail=0
run() {  # qemu CPU, what must be checked, what must be skipped
    local log
    log=$(QEMU_CPU=$1 qemu-aarch64 "$OUT/kernel_check") || { echo "$log"; echo "FAIL $1: kernel_check failed"; fail=1; return; }
    # Every format has a scalar kernel; each ARM family must have one for every format too.
    local formats
    formats=$(grep -c "kernel scalar " <<<"$log")
    for name in $2; do
        if [ "$(grep -c "kernel $name .*: checked" <<<"$log")" != "$formats" ]; then echo "$log"; echo "FAIL $1: $name not checked for all $formats formats"; fail=1; fi
    done
    for name in $3; do
        if [ "$(grep -c "kernel $name .*: SKIPPED" <<<"$log")" != "$formats" ]; then echo "$log"; echo "FAIL $1: $name should be skipped"; fail=1; fi
    done
    echo "qemu-aarch64 -cpu $1: $(grep "ISA families" <<<"$log"); $(tail -1 <<<"$log")"
}
run cortex-a53 "scalar neon" "neon-dotprod"
run max "scalar neon neon-dotprod" ""
exit $fail
