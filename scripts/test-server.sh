#!/usr/bin/env bash
# Builds phi4-server (make server) and runs its tests with the official `openai` Python client
# (and a short schemathesis run against GET /openapi.json), in a virtual environment of pinned
# packages under .build-srvpy.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s server >/dev/null
python3 tools/gen_openapi.py --check
VENV=.build-srvpy
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai, pytest, schemathesis, jsonschema, huggingface_hub" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check openai==3.63.0 pytest==9.0.3 schemathesis==4.32.5 pyyaml==6.0.3 jsonschema \
        huggingface_hub==2.5.0
fi
# The Hub tests (Server/Tests/test_hub.py) drive phi4 as a user would, with phi4-hub downloading.
swift build -c release --product phi4 >/dev/null
PHI4_SERVER="$PWD/Server/.build/release/phi4-server" PHI4_HUB="$PWD/Server/.build/release/phi4-hub" PHI4_CLI="$PWD/.build/release/phi4" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider Server/Tests

# A short schemathesis run (40 cases an operation; 400 in make test-long) against the served OpenAPI document (max_tokens capped at 8): every
# response must match the document, valid requests must be accepted and invalid ones refused,
# and nothing may be a 5xx. (405 for undeclared methods is not checked: unknown routes are 404.)
PORT=$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
Server/.build/release/phi4-server --model models/phi4-demo-q8_0.gguf --alias phi4-demo --port "$PORT" \
    --max-tokens 8 --ctx 512 -t 2 >.build-srvpy/schemathesis-server.log 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" --wait-for-schema 60 -n "$([ "${PHI4_TEST_LONG:-0}" = 1 ] && echo 400 || echo 40)" --request-timeout 30 \
    --exclude-checks unsupported_method --generation-deterministic
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null  # still serving
kill -TERM $SERVER_PID
wait $SERVER_PID  # exit status 0 after SIGTERM
trap - EXIT
echo "server: schemathesis passed, still serving afterwards, clean exit on SIGTERM"
