#!/usr/bin/env bash
# Sanitizer runs (slow: debug builds; not part of `make test`).
#   tools/sanitize.sh address   the Swift test suite under AddressSanitizer
#   tools/sanitize.sh thread    the Swift test suite under ThreadSanitizer
#   tools/sanitize.sh c         the library built with AddressSanitizer, and the C ABI tests
#                               (robustness, threads, soak, fuzz replay + a short fuzz run) built
#                               with the toolchain's clang -fsanitize=address,undefined against it
#   tools/sanitize.sh all       all three (default)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
FIX=Tests/Phi4Tests/Fixtures
# The Swift runtime keeps process-lifetime caches (type metadata, conformances): leak reports of
# those are noise; leaks through the C ABI are checked by valgrind in `make test`.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1}
export PHI4_TEST_SANITIZER=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0

swift_suite() {
    echo "== swift test --sanitize=$1"
    if swift test --sanitize="$1" --disable-swift-testing --build-path ".build-$1" 2>&1 | tee ".build-$1.log" |
        grep -E "Executed [0-9]+ tests|Sanitizer|ERROR|error:" | tail -5; then :; fi
    if grep -qE "Sanitizer|ERROR: |with [1-9][0-9]* failures" ".build-$1.log" ||
        ! grep -qE "Executed [0-9]+ tests, with 0 failures" ".build-$1.log"; then
        echo "FAILED: swift test --sanitize=$1 (see .build-$1.log)"
        status=1
    fi
}

c_suite() {
    echo "== C ABI tests, library and tests under AddressSanitizer + UBSan"
    swift build --product Phi4Shared --sanitize=address --build-path .build-asan-lib >/dev/null
    local lib=.build-asan-lib/debug rt
    rt=$(dirname "$(readlink -f "$(command -v swift)")")/../lib/swift/linux
    local CC="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
    local flags=(-std=gnu11 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -I include "$lib/libPhi4Shared.so"
                 -Wl,-rpath,"$PWD/$lib" -Wl,-rpath,"$rt" -lpthread -lm)
    mkdir -p .build-asan-c
    for t in abi_test threads_test soak; do "$CC" "Tests/CABI/$t.c" "${flags[@]}" -o ".build-asan-c/$t" 2>/dev/null; done
    "$CC" Tests/Fuzz/fuzz_abi.c "${flags[@]}" -o .build-asan-c/fuzz_abi 2>/dev/null
    ref() { python3 -c "import json,sys; p=json.load(open('$FIX/models/gqa4/reference/prompts.json'))['prompts'][$1]; ids=p['$2']
if '$2'=='greedy32': ids=ids[:next((i for i,t in enumerate(ids) if t in (513,521)),len(ids))]
print(','.join(map(str,ids)))"; }
    run() { if "$@" >".build-asan-c/last.log" 2>&1; then tail -1 .build-asan-c/last.log; else echo "FAILED: $*"; tail -30 .build-asan-c/last.log; status=1; fi; }
    run .build-asan-c/abi_test "$FIX/models/gqa4" "$FIX/tokenizer/phi4" "$(ref 1 ids)" "$(ref 1 greedy32)" 10
    run .build-asan-c/threads_test "$FIX/models/gqa4" "$(ref 1 ids)" "$(ref 2 ids)"
    run .build-asan-c/soak "$FIX/models/gqa8" 4 100
    for t in gguf safetensors config tokenizer encode chat state; do
        inputs=(Tests/Fuzz/regressions/"$t"-*)
        [ -e "${inputs[0]}" ] && run .build-asan-c/fuzz_abi "$t" --work ".build-asan-c/fuzz-$t" --fixtures "$FIX" --replay "${inputs[@]}"
        run .build-asan-c/fuzz_abi "$t" --work ".build-asan-c/fuzz-$t" --fixtures "$FIX" --seconds "${FUZZ_SECONDS:-20}"
    done
}

case $what in
    address|thread) swift_suite "$what" ;;
    c) c_suite ;;
    all) swift_suite address; swift_suite thread; c_suite ;;
    *) echo "usage: tools/sanitize.sh [address|thread|c|all]"; exit 2 ;;
esac
[ $status -eq 0 ] && echo "sanitizers: clean"
exit $status
