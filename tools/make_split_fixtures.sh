#!/usr/bin/env bash
# Splits the gqa8 GGUF fixture (written by the gguf package, tools/make_quant_fixtures.py) into three
# shards with llama.cpp's own `llama-gguf-split` (built by tools/build_llama_bench.sh), so that the
# split-model loader is tested on files the reference tool wrote:
#   Tests/Phi4Tests/Fixtures/quant/split/gqa8-q8_0-0000{1,2,3}-of-00003.gguf
#
#   bash tools/make_split_fixtures.sh [LLAMA_BIN_DIR]     # default .build-llama/bin
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/.build-llama/bin}"
Q="$ROOT/Tests/Phi4Tests/Fixtures/quant"
rm -rf "$Q/split" && mkdir -p "$Q/split"
# gqa8 has 3 layers × 6 tensors + 3 others = 21 tensors: at most 8 per shard gives 3 shards.
"$BIN/llama-gguf-split" --split --split-max-tensors 8 "$Q/gqa8-q8_0-gguf-package.gguf" "$Q/split/gqa8-q8_0" >/dev/null
ls -l "$Q/split"
