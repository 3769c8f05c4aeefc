#!/usr/bin/env bash
# Checks the command-line tool as a user drives it: the chat REPL through stdin, perplexity,
# quantize + info + generate on a GGUF, and builds the Swift embedding example.
set -euo pipefail
cd "$(dirname "$0")/.."
# The same flags as the Swift suite's build (make test runs that first), so this reuses its build.
build_start=$SECONDS
swift build -c release -Xswiftc -enable-testing --product phi4 >/dev/null
echo "  ($((SECONDS - build_start)) s) build phi4"
P=.build/release/phi4
M=Tests/Phi4Tests/Fixtures/models/gqa4
tmp_cli=$(mktemp -d)
trap 'rm -rf "$tmp_cli"' EXIT
pass=0
fail=0
# check NAME COMMAND: counts a pass or a failure; a check that takes 5 s or more prints its time, so
# the slow ones are visible in every run.
check() {
    local start=$SECONDS
    if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $1" >&2; fi
    if [ $((SECONDS - start)) -ge 5 ]; then echo "  ($((SECONDS - start)) s) $1"; fi
}

# Exit statuses: a runtime failure prints the library's message and exits 1 (no usage text); a
# usage error exits 64.
set +e
err=$($P generate --model /nonexistent/model --prompt hi 2>&1); rc=$?
set -e
check "a missing model exits 1 with the library's message" '[ $rc -eq 1 ] && printf "%s" "$err" | grep -q "^Error: .*/nonexistent/model" && ! printf "%s" "$err" | grep -q "^Usage"'
set +e
$P generate --model $M >/dev/null 2>&1; rc=$?
set -e
check "a usage error exits 64" '[ $rc -eq 64 ]'

# Embeddings against transformers' last hidden states (tools/make_embedding_fixtures.py): the
# fixture's first prompt is "Hello, world!" in the small vocabulary; cosine ≥ 1 − 1e-4.
G8=Tests/Phi4Tests/Fixtures/models/gqa8
emb=$($P embed --model $G8 "Hello, world!" "def fib(n):" 2>/dev/null)
check "embed (mean) matches transformers" 'printf "%s" "$emb" | python3 -c "
import json, math, sys
got = json.load(sys.stdin); want = json.load(open(\"$G8/reference/embeddings.json\"))[\"mean\"][0]
cos = sum(a * b for a, b in zip(got[0], want)) / math.sqrt(sum(a * a for a in got[0]) * sum(b * b for b in want))
assert len(got) == 2 and len(got[0]) == 64 and cos >= 1 - 1e-4, cos"'
rows=$($P embed --model $G8 --pooling none --normalize "Hello, world!" 2>/dev/null)
check "embed --pooling none --normalize: a unit vector per token" 'printf "%s" "$rows" | python3 -c "
import json, sys
r = json.load(sys.stdin)[0]
assert len(r) == 8 and all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in r), len(r)"'
set +e
$P embed --model $G8 --pooling max hi >/dev/null 2>&1; rc=$?
set -e
check "embed refuses an unknown pooling" '[ $rc -eq 64 ]'
typ=$($P generate --model $M --ids 1,2,3 --typical 0.5 --seed 4 --max-tokens 8 --print-ids 2>/dev/null)
mir=$($P generate --model $M --ids 1,2,3 --mirostat 2 --mirostat-ent 3 --seed 4 --max-tokens 8 --print-ids 2>/dev/null)
check "generate takes --typical and --mirostat" '[ -n "$typ" ] && [ -n "$mir" ]'

# llama-cli's flags: -m -p -f -n -s --temp -sys -c -t -b, grammar and schema as text or files.
printf 'def fib(n):' > "$tmp_cli/prompt.txt"
a=$($P generate -m $M -p "def fib(n):" -n 6 --temp 0 --print-ids 2>/dev/null)
b=$($P generate --model $M -f "$tmp_cli/prompt.txt" --max-tokens 6 --greedy --print-ids -c 64 -b 8 -t 1 2>/dev/null)
check "generate -m -p -n --temp equals --model -f --max-tokens --greedy (-c -b -t)" '[ -n "$a" ] && [ "$a" = "$b" ]'
s1=$($P generate -m $M -p "x" -n 6 -s 7 --temp 0.9 --print-ids 2>/dev/null); s2=$($P generate -m $M -p "x" -n 6 --seed 7 --temperature 0.9 --print-ids 2>/dev/null)
check "-s and --temp are --seed and --temperature" '[ -n "$s1" ] && [ "$s1" = "$s2" ]'
g=$($P generate -m $M -p "answer:" -n 4 --grammar 'root ::= "yes" | "no"' 2>/dev/null)
printf 'root ::= "yes" | "no"' > "$tmp_cli/yn.gbnf"
gf=$($P generate -m $M -p "answer:" -n 4 --grammar-file "$tmp_cli/yn.gbnf" 2>/dev/null)
check "--grammar takes GBNF text, --grammar-file a file" '[ "$g" = yes -o "$g" = no ] && [ "$g" = "$gf" ]'
js=$($P generate -m $M -p "n =" -n 8 --temp 0 --json-schema '{"type": "integer", "minimum": 0, "maximum": 99}' 2>/dev/null)
check "--json-schema takes the schema's text" 'printf "%s" "$js" | grep -qE "^[0-9]{1,2}$"'
sy=$($P generate -m $M --chat -sys "Be brief." -p "hi" -n 3 --temp 0 --print-ids 2>/dev/null)
sl=$($P generate -m $M --chat --system "Be brief." -p "hi" -n 3 --temp 0 --print-ids 2>/dev/null)
check "-sys is --system" '[ -n "$sy" ] && [ "$sy" = "$sl" ]'

demo=$($P demo --max-tokens 16 2>&1)
check "phi4 demo generates with the bundled model and reports its speed" 'printf "%s" "$demo" | grep -qE "^\[[0-9]+ tokens, [0-9.]+ tok/s"'
out=$(printf 'hello\n/system Be brief.\nhi there\n/reset\nagain\n/exit\n' | $P chat --model $M --max-tokens 8 --seed 1 2>/dev/null)
check "chat answers three turns" '[ "$(printf "%s" "$out" | grep -c "^> ")" -ge 4 ]'
check "chat /system" 'printf "%s" "$out" | grep -q "system message set"'
check "chat /reset" 'printf "%s" "$out" | grep -q "conversation reset"'
long=$(printf 'first question here\nsecond question here\nthird question here\nfourth one\nfifth one\n/exit\n' |
    $P chat --model $M --system "Be brief." --max-tokens 24 --ctx 96 --seed 1 2>/dev/null)
check "chat drops the oldest turns when the context is full" '[ "$(printf "%s" "$long" | grep -c "^> ")" -ge 5 ] && printf "%s" "$long" | grep -q "oldest messages to fit"'
# A checkpoint whose tokenizer.json lists its special tokens in model.vocab too: the chat prompt and
# greedy ids equal transformers' (tools/make_added_token_fixtures.py).
MVS=Tests/Phi4Tests/Fixtures/models/mini-vocab-specials
want=$(python3 -c "import json; print(','.join(map(str, json.load(open('$MVS/reference.json'))['greedy'])))")
check "chat prompt and greedy ids of a vocabulary that lists its specials" '[ "$($P generate --model $MVS --chat --system "You write Python." --prompt "def fib(n): and then print the band" --greedy --max-tokens 24 --print-ids 2>/dev/null)" = "$want" ]'
# A model split by llama-gguf-split loads from any shard; info names the shards.
SPLIT=Tests/Phi4Tests/Fixtures/quant/split/gqa8-q8_0-00002-of-00003.gguf
check "info on a split model names its shards" '$P info "$SPLIT" | grep -q "^split: 3 shards"'
check "generate from a middle shard of a split model" '[ -n "$($P generate --model "$SPLIT" --ids 1,2,3 --greedy --max-tokens 4 --print-ids 2>/dev/null)" ]'
# An unknown type is a usage error of quantize, listing the types.
set +e
err=$($P quantize --model $M --type q3_z --out /tmp/never.gguf 2>&1); rc=$?
set -e
check "quantize refuses an unknown type (exit $rc)" '[ $rc -eq 64 ] && printf "%s" "$err" | grep -q "iq2_m"'
tmp=$(mktemp -d)
head -c 20000 Sources/Phi4/Model/Decoder.swift > "$tmp/text.txt"
ppl=$($P perplexity --model $M --file "$tmp/text.txt" --ctx 128 --max-windows 2 2>/dev/null)
check "perplexity prints a value" 'printf "%s" "$ppl" | grep -qE "^perplexity: [0-9.]+ over [0-9]+ predictions"'
# An importance matrix, then a quantization that uses it (llama-imatrix's and llama-quantize's flags).
DEMO=models/phi4-demo-q8_0.gguf
$P imatrix -m $DEMO -f "$tmp/text.txt" -c 128 --chunks 4 -o "$tmp/im.gguf" 2>/dev/null
check "imatrix writes llama.cpp's GGUF format" '[ "$(head -c 4 "$tmp/im.gguf")" = GGUF ]'
$P quantize --model $DEMO --allow-requantize --imatrix "$tmp/im.gguf" --type Q3_K_M --token-embedding-type q8_0 --out "$tmp/q3.gguf" 2>/dev/null
check "quantize with an importance matrix" '$P info "$tmp/q3.gguf" | grep -q "q3_k"'
set +e
err=$($P quantize --model $DEMO --allow-requantize --type q2_k_s --out "$tmp/never.gguf" 2>&1); rc=$?
set -e
check "q2_k_s without an importance matrix is refused, saying how to make one (exit $rc)" '[ $rc -ne 0 ] && printf "%s" "$err" | grep -q "phi4 imatrix"'
$P quantize --model $M --type q8_0 --out "$tmp/m.gguf" 2>/dev/null
check "info on a quantized GGUF" '$P info "$tmp/m.gguf" | grep -q "tensors q8_0"'
check "generate from the GGUF" '[ -n "$($P generate --model "$tmp/m.gguf" --ids 1,2,3 --greedy --max-tokens 4 --print-ids 2>/dev/null)" ]'
bench=$($P bench --model "$tmp/m.gguf" -p 4 -n 2 -r 1 --ctx 64 --kv-type f16 --json 2>/dev/null)
# Expected from the model's config: K and V, every layer, 64 positions, kv_heads·head_dim halves.
check "bench --json reports speed and the KV cache's type and size" 'printf "%s" "$bench" | python3 -c "
import json, sys
b = json.load(sys.stdin); c = json.load(open(\"$M/config.json\"))
kv_dim = c[\"num_key_value_heads\"] * c[\"hidden_size\"] // c[\"num_attention_heads\"]
assert b[\"pp_tps\"] > 0 and b[\"tg_tps\"] > 0, b
assert b[\"kv_type\"] == \"f16\" and b[\"kv_positions\"] == 64, b
assert b[\"kv_bytes\"] == 2 * c[\"num_hidden_layers\"] * 64 * kv_dim * 2, (b, kv_dim)
"'
verify=$($P bench --model "$tmp/m.gguf" -p 0 -n 0 -r 1 --ctx 64 --verify 3 --json 2>/dev/null)
check "bench --verify --json reports the time of a pass over 1-4 tokens" 'printf "%s" "$verify" | python3 -c "
import json, sys
v = json.load(sys.stdin)[\"verify_s\"]
assert len(v) == 4 and all(x > 0 for x in v), v
"'
# tools/lookup_sim.py replays the engine's draft policy to estimate prompt lookup's speed-up; it
# must propose and accept exactly what the engine does (here on the demo model's own output).
check "lookup_sim.py's replay of the draft policy matches the engine" 'python3 tools/lookup_sim.py --phi4 $P --check-engine models/phi4-demo-q8_0.gguf >/dev/null'

# Limits on a Phi-4-shaped model larger than this machine's RAM: zero Q8_0 weights written as a
# sparse file (no disk space). It maps and runs (weights stay in the file mapping, the kernel pages
# them), a 16384-token context is accounted and created, one past the model's 16384 is refused,
# and where the address space cannot hold the mapping (ulimit -v) loading is an error, not a crash.
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
layers=$(( (mem_kb / 1024 + 4096) / 362 + 1 ))
$P dev random-model --type q8_0 --layers "$layers" --zeros --tokenizer Tests/Phi4Tests/Fixtures/tokenizer/phi4 --out "$tmp/big.gguf" 2>/dev/null
check "the sparse model is larger than RAM" '[ "$(stat -c %s "$tmp/big.gguf")" -gt $((mem_kb * 1024)) ]'
info=$($P info "$tmp/big.gguf" --ctx 16384)
check "info accounts a 16384-token KV cache" 'printf "%s" "$info" | grep -qE "^KV cache at 16384 positions: f16 [0-9.]+ GB"'
check "a model larger than RAM generates" '$P generate --model "$tmp/big.gguf" --prompt "Hi" --max-tokens 1 --ctx 16384 >/dev/null 2>&1'
check "a context past the model's length is refused" '! $P generate --model "$tmp/big.gguf" --prompt "Hi" --max-tokens 1 --ctx 16385 >/dev/null 2>&1'
set +e
err=$(ulimit -v 4000000; $P generate --model "$tmp/big.gguf" --prompt "Hi" --max-tokens 1 2>&1 >/dev/null)
rc=$?
set -e
check "an unmappable model is an error (exit $rc), not a crash" '[ $rc -ne 0 ] && [ $rc -lt 128 ] && printf "%s" "$err" | grep -q "mmap failed"'
rm -rf "$tmp"
check "the Swift embedding example builds" 'swift build -c release --package-path examples/swift >/dev/null 2>&1'
check "and runs a chat turn" '[ -n "$(examples/swift/.build/release/ChatTurn $M "Hi")" ]'
# Constrained output: every schema of the committed suite, one seed each, parses and validates
# under the PyPI jsonschema package, and regular-expression outputs match under Python's re
# (make test-long runs 5 seeds; tools/schema_suite.py takes any number).
python3 -c "import jsonschema" 2>/dev/null || python3 -m pip install -q jsonschema 2>&1 | grep -v "Running pip as the 'root' user" || true
schema_log=$(mktemp)
check "constrained JSON validates (jsonschema) and regex output fully matches (re)" 'python3 tools/schema_suite.py --seeds "$([ "${PHI4_TEST_LONG:-0}" = 1 ] && echo 5 || echo 1)" --phi4 "$P" >"$schema_log" 2>&1 || { grep -E "FAIL|outputs" "$schema_log" >&2; false; }'
rm -f "$schema_log"
# The official JSON-Schema-Test-Suite (draft 2020-12, in the jsonschema sdist, fetched with pip):
# no invalid instance is accepted in any spelling, and random walks of every compiled grammar (the
# suite's and the schemas above) validate under jsonschema (5 walks a schema; make test-long 50).
suite_log=$(mktemp)
check "JSON-Schema-Test-Suite: nothing unsound (instances and random walks, jsonschema)" 'python3 tools/json_schema_suite.py --walks "$([ "${PHI4_TEST_LONG:-0}" = 1 ] && echo 50 || echo 5)" --check >"$suite_log" 2>&1 || { grep -E "unsound:|TOTAL|Error|error" "$suite_log" >&2; false; }'
rm -f "$suite_log"
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
