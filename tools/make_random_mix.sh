#!/usr/bin/env bash
# A full Phi-4-shaped GGUF with random blocks in one of llama-quantize's mixes that
# `phi4 dev random-model` has no recipe for (IQ3_M, IQ2_M, IQ3_XXS, IQ2_XXS, IQ1_M, …): the pinned
# llama-quantize chooses each tensor's type (`--dry-run` on a sparse all-zero Q8_0 file of the same
# shape, which takes no disk space), and random-model writes random blocks of those types with sane
# scales. For speed and memory measurements (tools/bench_vs_llamacpp.py); the weights mean nothing.
#
#   bash tools/make_random_mix.sh IQ3_M OUT.gguf [--llama-bin .build-llama/bin]
set -euo pipefail
cd "$(dirname "$0")/.."
TYPE=$1
OUT=$2
BIN=${4:-.build-llama/bin}
PHI4=.build/release/phi4
TOK=Tests/Phi4Tests/Fixtures/tokenizer/phi4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PHI4" dev random-model --type q8_0 --zeros --tokenizer "$TOK" --out "$tmp/zeros.gguf" 2>/dev/null
"$BIN/llama-quantize" --dry-run --allow-requantize "$tmp/zeros.gguf" "$TYPE" > "$tmp/dry.txt" 2>&1
# "[  9/ 243] blk.0.ffn_up.weight - [...], type = q8_0, size = … -> … MiB (iq3_s)" → "blk.0.ffn_up.weight IQ3_S"
sed -n 's/^\[ *[0-9]*\/ *[0-9]*\] \([^ ]*\) .*(\([A-Za-z0-9_]*\))$/\1 \2/p' "$tmp/dry.txt" | awk '{print $1, toupper($2)}' > "$tmp/types.txt"
[ -s "$tmp/types.txt" ] || { echo "llama-quantize --dry-run gave no tensor types:"; tail -5 "$tmp/dry.txt"; exit 1; }
echo "$(wc -l < "$tmp/types.txt") tensors: $(cut -d' ' -f2 "$tmp/types.txt" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
"$PHI4" dev random-model --type q8_0 --tensor-types "$tmp/types.txt" --tokenizer "$TOK" --out "$OUT" 2>/dev/null
ls -la "$OUT"
