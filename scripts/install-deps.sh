#!/usr/bin/env bash
# Installs the system packages libphi4 builds against (Debian/Ubuntu): OpenBLAS and pkg-config;
# with --test also what the test suite uses (a C compiler, valgrind, curl, Python's venv, and the
# aarch64 cross compiler and qemu-user for the ARM kernel check).
# As root it installs them; otherwise it prints the one command to run.
set -euo pipefail
need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The test suite also needs a C compiler, valgrind, curl and Python's venv.
if [ "${1:-}" = "--test" ]; then
    command -v cc >/dev/null 2>&1 || need+=(gcc)
    command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
    # The aarch64 kernels are checked cross-compiled, under qemu (tools/arm_kernel_check.sh).
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "libphi4 needs: ${need[*]}. Run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
