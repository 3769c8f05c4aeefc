#!/usr/bin/env bash
# Seeded mutation testing of the model-file readers (GGUF and safetensors): truncations, bit
# flips and forged lengths; each mutant must load or be refused with an error, never crash.
#   tools/fuzz_files.sh [COUNT] [SEED]      (default 10000 mutants, seed 1)
set -euo pipefail
cd "$(dirname "$0")/.."
PHI4_MUTANTS="${1:-10000}" PHI4_MUTANT_SEED="${2:-1}" \
    swift test -c release -Xswiftc -enable-testing --disable-swift-testing \
    --filter GGUFTests/testMutatedFilesNeverCrash 2>&1 | grep -E "mutants:|Executed|error" | head -5
