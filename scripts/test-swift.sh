#!/usr/bin/env bash
# The Swift suite in a release build (the numeric kernels are too slow to test unoptimized), then
# its ten slowest tests, so that where the time goes is visible in every run.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
build_start=$SECONDS
swift build -c release -Xswiftc -enable-testing --build-tests >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
echo "  ($((SECONDS - build_start)) s) build"
swift test -c release -Xswiftc -enable-testing --disable-swift-testing --skip-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "  slowest tests:"
sed -nE "s/^Test Case '-?\[?([A-Za-z0-9_.]+)[ .]([A-Za-z0-9_]+)\]?' passed \(([0-9.]+) seconds\).*/\3 \1.\2/p" "$log" |
    sort -rn | head -10 | awk '{printf "    %7.2f s  %s\n", $1, $2}'
rm -f "$log"
exit "$status"
