#!/usr/bin/env bash
# Tests the C ABI the way a C user meets it: builds libphi4.so (make lib), compiles the examples
# and the C tests with a plain C compiler against include/phi4.h and lib/libphi4.so only, checks
# the examples' output against transformers' reference ids, runs the robustness and threading
# tests, and runs the robustness test (100 load/free cycles) under valgrind. Also checks the
# kernels' ISA paths against their scalar twins when built by the plain C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-cc}
OUT=.build-ctest
FIX=Tests/Phi4Tests/Fixtures
mkdir -p "$OUT"
# mark NAME: prints how long the part since the previous mark took (where the stage's time goes).
# PHI4_TEST_LONG=1 (make test-long) runs the randomized checks at their full counts.
LONG=${PHI4_TEST_LONG:-0}
last_mark=$SECONDS
mark() { echo "  ($((SECONDS - last_mark)) s) $1"; last_mark=$SECONDS; }
make -s lib >/dev/null
mark "make lib"

LINK=(-I include -L lib -lphi4 -Wl,-rpath,"$PWD/lib")
for f in simple chat tokenize; do
    "$CC" -std=c11 -Wall -Wextra -Werror -O2 "examples/c/$f.c" "${LINK[@]}" -o "$OUT/$f"
done
"$CC" -std=gnu11 -Wall -Wextra -O1 -g Tests/CABI/abi_test.c "${LINK[@]}" -lm -o "$OUT/abi_test"
"$CC" -std=gnu11 -Wall -Wextra -O1 -g Tests/CABI/threads_test.c "${LINK[@]}" -lpthread -lm -o "$OUT/threads_test"
"$CC" -std=c11 -Wall -Wextra -O1 -g Tests/CABI/compat_test.c "${LINK[@]}" -o "$OUT/compat_test"

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }

# ids of reference prompt K of MODEL: "ids" or "greedy32" (cut at the first end-of-generation id).
ref() {
    python3 - "$FIX/models/$1/reference/prompts.json" "$2" "$3" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["prompts"][int(sys.argv[2])]
ids = p[sys.argv[3]]
if sys.argv[3] == "greedy32":
    eog = {521, 513}
    ids = ids[:next((i for i, t in enumerate(ids) if t in eog), len(ids))]
print(",".join(map(str, ids)))
PY
}

# The kernels compiled by the plain C compiler (GCC here, not the clang of the Swift build):
# every ISA path this CPU has gives the scalar path's bits (Tests/Kernels/kernel_check.c).
if "$CC" -O2 -pthread -I Sources/CPhi4Kernels/include Tests/Kernels/kernel_check.c Sources/CPhi4Kernels/*.c -lm -o "$OUT/kernel_check" &&
    "$OUT/kernel_check"; then ok; else bad "kernel_check"; fi
# The aarch64 kernels, cross-compiled and run under qemu with and without the dot-product extension.
if bash tools/arm_kernel_check.sh; then ok; else bad "arm_kernel_check"; fi
mark "kernel checks (x86, qemu aarch64)"

# The library: no Swift toolchain library needed, only phi4_* exported, a SONAME.
if ldd lib/libphi4.so | grep -qiE 'swift|/opt/'; then bad "ldd shows a toolchain library"; else ok; fi
exported=$(nm -D --defined-only lib/libphi4.so | awk '$2 ~ /^[A-Z]$/ {print $3}')
if [ -n "$exported" ] && ! echo "$exported" | grep -qv '^phi4_'; then ok; else bad "exports other than phi4_*"; fi
if readelf -d lib/libphi4.so | grep -q 'SONAME.*libphi4.so.1'; then ok; else bad "no SONAME"; fi
# Every function declared in phi4.h is exported (and nothing else).
declared=$(grep -E '^[a-z]' include/phi4.h | grep -oE '\bphi4_[a-z_0-9]+\(' | tr -d '(' | sort -u)
if [ "$declared" = "$(echo "$exported" | sort -u)" ]; then ok; else bad "header and exports differ: $(diff <(echo "$declared") <(echo "$exported" | sort -u) | tr '\n' ' ')"; fi

# Examples: greedy ids from simple.c equal transformers' on every fixture model and prompt.
for model in gqa4 gqa8 mha; do
    for k in 0 1 2 3; do
        got=$("$OUT/simple" "$FIX/models/$model" --ids "$(ref $model $k ids)" 32)
        want=$(ref $model $k greedy32)
        if [ "$got" = "$want" ]; then ok; else bad "simple $model prompt $k: $got != $want"; fi
    done
done
# Phi-4-mini's architecture (o200k vocabulary, partial rotary, LongRoPE, tied lm_head): prompt 2
# crosses original_max_position_embeddings while generating.
for k in 0 1 2 3 4; do
    got=$("$OUT/simple" "$FIX/models/mini" --ids "$(ref mini $k ids)" 32)
    want=$(ref mini $k greedy32)
    if [ "$got" = "$want" ]; then ok; else bad "simple mini prompt $k: $got != $want"; fi
done
# A checkpoint whose tokenizer.json also lists its special tokens in model.vocab (the tokenizers
# library's layout): the chat prompt's text tokenizes to transformers' ids, and greedy ids from those
# equal transformers' generate.
MVS="$FIX/models/mini-vocab-specials"
mvs() { python3 -c "import json,sys; r=json.load(open('$MVS/reference.json')); print(','.join(map(str, r[sys.argv[1]])))" "$1"; }
got=$("$OUT/tokenize" "$MVS" "<|system|>You write Python.<|end|><|user|>def fib(n): and then print the band<|end|><|assistant|>" --special | head -1)
if [ "$got" = "[$(mvs prompt_ids)]" ]; then ok; else bad "tokenize mini-vocab-specials: $got"; fi
got=$("$OUT/simple" "$MVS" --ids "$(mvs prompt_ids)" 24)
if [ "$got" = "$(mvs greedy)" ]; then ok; else bad "simple mini-vocab-specials: $got != $(mvs greedy)"; fi
# tokenize.c: tiktoken's ids for a known text, and the text back.
got=$("$OUT/tokenize" "$FIX/tokenizer/phi4" "Hello, world!<|im_end|>" --special)
if [ "$got" = $'[9906,11,1917,0,100265]\nHello, world!<|im_end|>' ]; then ok; else bad "tokenize: $got"; fi
# chat.c: two turns, each answered; the REPL exits at end of input.
got=$(printf 'hi\nmore\n' | "$OUT/chat" "$FIX/models/gqa4" "Be brief." | grep -c '^> ' || true)
if [ "$got" -ge 3 ]; then ok; else bad "chat: $got prompts"; fi
# simple.c with a text prompt streams something and exits 0.
if "$OUT/simple" "$FIX/models/gqa4" "Hello" 8 >/dev/null 2>&1; then ok; else bad "simple text prompt"; fi
mark "examples against transformers' ids"

# Robustness and threads.
A=$(ref gqa4 1 ids)
if "$OUT/abi_test" "$FIX/models/gqa4" "$FIX/tokenizer/phi4" "$A" "$(ref gqa4 1 greedy32)" 100; then ok; else bad abi_test; fi
if "$OUT/threads_test" "$FIX/models/gqa4" "$A" "$(ref gqa4 2 ids)"; then ok; else bad threads_test; fi
if "$OUT/compat_test" "$FIX/models/gqa4"; then ok; else bad compat_test; fi
mark "abi, threads and compat tests"

# Concurrency soak: 4 threads × 200 seeded generations on one model (× 1000 in make test-long),
# random cancellations.
"$CC" -std=gnu11 -Wall -Wextra -O2 -g Tests/CABI/soak.c "${LINK[@]}" -lpthread -o "$OUT/soak"
if line=$("$OUT/soak" "$FIX/models/gqa8" 4 "$([ "$LONG" = 1 ] && echo 1000 || echo 200)"); then ok; else bad "soak"; fi
echo "  $line"
mark "soak"

# Fuzz harness: every committed regression input replays without a crash, and a short seeded run
# of each target (300 runs; 3,000 in make test-long; tools/fuzz.sh runs them for longer) finds nothing.
"$CC" -std=gnu11 -Wall -Wextra -O1 -g Tests/Fuzz/fuzz_abi.c "${LINK[@]}" -o "$OUT/fuzz_abi"
for t in gguf safetensors config tokenizer encode chat state; do
    inputs=(Tests/Fuzz/regressions/"$t"-*)
    if [ -e "${inputs[0]}" ]; then
        if "$OUT/fuzz_abi" "$t" --work "$OUT/fuzz-$t" --fixtures "$FIX" --replay "${inputs[@]}" >/dev/null; then ok; else bad "fuzz regressions $t"; fi
    fi
    if line=$("$OUT/fuzz_abi" "$t" --work "$OUT/fuzz-$t" --fixtures "$FIX" --runs "$([ "$LONG" = 1 ] && echo 3000 || echo 300)" --seed 7 | tail -1); then
        ok
        echo "  fuzz $line"
    else
        bad "fuzz $t (input: $OUT/fuzz-$t/current)"
    fi
done
mark "fuzz"

# The robustness test under valgrind: no error, nothing definitely lost over 100 load/free cycles.
# (valgrind cannot read the DWARF 5 debug info of the toolchain, so it gets a stripped copy.)
if command -v valgrind >/dev/null 2>&1; then
    mkdir -p "$OUT/vglib"
    strip --strip-debug -o "$OUT/vglib/libphi4.so.1" lib/libphi4.so.1
    if LD_LIBRARY_PATH="$OUT/vglib" valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite "$OUT/abi_test" "$FIX/models/gqa4" "$FIX/tokenizer/phi4" "$A" \
        "$(ref gqa4 1 greedy32)" 100 >"$OUT/valgrind.log" 2>&1; then
        ok
    else
        bad "valgrind (see $OUT/valgrind.log)"
        tail -40 "$OUT/valgrind.log" >&2
    fi
    # Params structs of an older header (shorter, on the heap at their exact size) and of a newer
    # one (longer): no byte past the caller's struct is read or written.
    if LD_LIBRARY_PATH="$OUT/vglib" valgrind -q --error-exitcode=99 "$OUT/compat_test" "$FIX/models/gqa4" \
        >"$OUT/valgrind-compat.log" 2>&1; then
        ok
    else
        bad "compat_test under valgrind (see $OUT/valgrind-compat.log)"
        tail -40 "$OUT/valgrind-compat.log" >&2
    fi
    mark "valgrind"
else
    bad "valgrind is not installed (apt-get install valgrind)"
fi

echo "c-abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
