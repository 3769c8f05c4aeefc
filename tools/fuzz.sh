#!/usr/bin/env bash
# Fuzzes the C ABI with Tests/Fuzz/fuzz_abi.c (a seeded mutation engine) for a given time per
# target. An input that crashes, hangs (60 s) or breaks an oracle is copied to
# Tests/Fuzz/regressions/TARGET-<sha1>.bin (commit it: `make test` replays every file there) and
# fuzzing goes on with the next seed.
#   tools/fuzz.sh [SECONDS_PER_TARGET] [SEED] [TARGET...]
#   (default 60 s, seed 1, targets gguf safetensors config tokenizer encode chat state)
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-60}
SEED=${2:-1}
shift 2 2>/dev/null || shift $#
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(gguf safetensors config tokenizer encode chat state)
make -s lib >/dev/null || exit 1
OUT=.build-fuzz
mkdir -p "$OUT" Tests/Fuzz/regressions
cc -std=gnu11 -O2 -g Tests/Fuzz/fuzz_abi.c -I include -L lib -lphi4 -Wl,-rpath,"$PWD/lib" -o "$OUT/fuzz_abi" || exit 1
FIX=Tests/Phi4Tests/Fixtures
total_found=0
for t in "${TARGETS[@]}"; do
    end=$(( $(date +%s) + SECONDS_PER ))
    seed=$SEED execs=0 acc=0 found=0
    while [ "$(date +%s)" -lt "$end" ]; do
        left=$(( end - $(date +%s) ))
        line=$(timeout $((left + 60)) "$OUT/fuzz_abi" "$t" --work "$OUT/work-$t" --fixtures "$FIX" \
            --seconds "$left" --seed "$seed" 2>"$OUT/$t.stderr" | tail -1)
        rc=$?
        if [ $rc -eq 0 ]; then
            execs=$((execs + $(echo "$line" | awk '{print $2}')))
            acc=$((acc + $(echo "$line" | awk '{print $4}')))
        else
            sha=$(sha1sum "$OUT/work-$t/current" | cut -c1-12)
            cp "$OUT/work-$t/current" "Tests/Fuzz/regressions/$t-$sha.bin"
            echo "$t: exit $rc with seed $seed -> Tests/Fuzz/regressions/$t-$sha.bin" >&2
            tail -5 "$OUT/$t.stderr" >&2
            found=$((found + 1))
        fi
        seed=$((seed + 1))
    done
    echo "$t: $execs executions, $acc accepted, $((execs - acc)) refused, $found crashes"
    total_found=$((total_found + found))
done
[ "$total_found" -eq 0 ]
