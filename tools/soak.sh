#!/usr/bin/env bash
# Concurrency soak over the C ABI (Tests/CABI/soak.c): THREADS threads × ITERATIONS seeded
# generations on one shared model with random cancellations; same seed → same text, resident
# memory stable after warm-up.
#   tools/soak.sh [MODEL] [THREADS] [ITERATIONS]   (default: fixture model gqa8, 4, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s lib >/dev/null
mkdir -p .build-ctest
cc -std=gnu11 -O2 -g Tests/CABI/soak.c -I include -L lib -lphi4 -Wl,-rpath,"$PWD/lib" -lpthread -o .build-ctest/soak
.build-ctest/soak "${1:-Tests/Phi4Tests/Fixtures/models/gqa8}" "${2:-4}" "${3:-200}"
