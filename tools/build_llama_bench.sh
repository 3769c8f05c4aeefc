#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench`, `llama-server`, `llama-quantize`, `llama-imatrix`,
# `llama-gguf-split` and `llama-perplexity` from the llama.cpp sources vendored in the
# PyPI sdist of llama-cpp-python (pinned below), with CMake, for this CPU (GGML_NATIVE=ON). The
# speed comparisons in BENCHMARKS.md use it: tools/bench_vs_llamacpp.py --llama-bench PATH.
#
#   bash tools/build_llama_bench.sh [OUT_DIR]     # default OUT_DIR: .build-llama (≈ 5–10 min on 2 cores)
#   → OUT_DIR/bin/llama-{bench,server,quantize,imatrix,gguf-split,perplexity}, OUT_DIR/VERSION
#     (sdist and llama.cpp commit)
set -euo pipefail
VERSION=0.3.36
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/.build-llama}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null
    else
        echo "needs cmake and g++: sudo apt-get install -y cmake g++" >&2; exit 1
    fi
fi
SRC="$OUT/src"
if [ ! -d "$SRC/vendor/llama.cpp" ]; then
    tmp="$(mktemp -d)"
    python3 -m pip download --no-deps --no-binary llama-cpp-python -d "$tmp" "llama-cpp-python==$VERSION" >/dev/null
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$SRC" --strip-components=1
    rm -rf "$tmp"
fi
cmake -S "$SRC/vendor/llama.cpp" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF \
    -DBUILD_SHARED_LIBS=OFF >/dev/null
TOOLS="llama-bench llama-server llama-quantize llama-imatrix llama-gguf-split llama-perplexity"
# shellcheck disable=SC2086
cmake --build "$OUT/build" --target $TOOLS -j "$(nproc)" >/dev/null
mkdir -p "$OUT/bin"
for t in $TOOLS; do cp "$OUT/build/bin/$t" "$OUT/bin/"; done
commit="$(sed -n 's/.*LLAMA_COMMIT = "\(.*\)".*/\1/p' "$OUT/build/common/build-info.cpp" 2>/dev/null | head -1)"
echo "llama-cpp-python $VERSION sdist, vendor/llama.cpp ${commit:-unknown}" > "$OUT/VERSION"
echo "built $OUT/bin/llama-bench"
