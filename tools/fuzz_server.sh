#!/usr/bin/env bash
# The long robustness run of phi4-server: schemathesis (the pinned version of
# scripts/test-server.sh) with EXAMPLES generated requests per operation, random rather than
# deterministic, against the demo model; then the server must still answer and exit 0 on SIGTERM.
# The mutated-body half of the run is tools/soak_server.py (flipped bytes, truncated and oversized
# bodies, wrong types) under mixed load.
#   tools/fuzz_server.sh [EXAMPLES]     (default 1000 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-1000}"
make -s server >/dev/null
VENV=.build-srvpy
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import schemathesis" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check openai==3.63.0 pytest==9.0.3 schemathesis==4.32.5 pyyaml==6.0.3
fi
PORT=$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
LOG="$VENV/fuzz-server.log"
Server/.build/release/phi4-server --model models/phi4-demo-q8_0.gguf --alias phi4-demo --port "$PORT" \
    --max-tokens 8 --ctx 512 -t 2 >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
start=$(date +%s)
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" --wait-for-schema 60 -n "$EXAMPLES" \
    --request-timeout 60 --exclude-checks unsupported_method
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null
curl -sf "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "Hello", "max_tokens": 4}' >/dev/null
echo "still serving after $(( $(date +%s) - start )) s of schemathesis; VmRSS $(grep VmRSS /proc/$SERVER_PID/status | awk '{print $2}') kB"
kill -TERM $SERVER_PID
wait $SERVER_PID
trap - EXIT
echo "clean exit on SIGTERM"
