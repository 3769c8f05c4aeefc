#!/usr/bin/env bash
# Checks the command-line tool as a user drives it: the chat REPL through stdin, perplexity,
# quantize + info + generate on a GGUF, and builds the Swift embedding example.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product phi4 >/dev/null
P=.build/release/phi4
M=Tests/Phi4Tests/Fixtures/models/gqa4
pass=0
fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $1" >&2; fi; }

out=$(printf 'hello\n/system Be brief.\nhi there\n/reset\nagain\n/exit\n' | $P chat --model $M --max-tokens 8 --seed 1 2>/dev/null)
check "chat answers three turns" '[ "$(printf "%s" "$out" | grep -c "^> ")" -ge 4 ]'
check "chat /system" 'printf "%s" "$out" | grep -q "system message set"'
check "chat /reset" 'printf "%s" "$out" | grep -q "conversation reset"'
tmp=$(mktemp -d)
head -c 20000 Sources/Phi4/Model/Decoder.swift > "$tmp/text.txt"
ppl=$($P perplexity --model $M --file "$tmp/text.txt" --ctx 128 --max-windows 2 2>/dev/null)
check "perplexity prints a value" 'printf "%s" "$ppl" | grep -qE "^perplexity: [0-9.]+ over [0-9]+ predictions"'
$P quantize --model $M --type q8_0 --out "$tmp/m.gguf" 2>/dev/null
check "info on a quantized GGUF" '$P info "$tmp/m.gguf" | grep -q "tensors q8_0"'
check "generate from the GGUF" '[ -n "$($P generate --model "$tmp/m.gguf" --ids 1,2,3 --greedy --max-tokens 4 --print-ids 2>/dev/null)" ]'
rm -rf "$tmp"
check "the Swift embedding example builds" 'swift build -c release --package-path examples/swift >/dev/null 2>&1'
check "and runs a chat turn" '[ -n "$(examples/swift/.build/release/ChatTurn $M "Hi")" ]'
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
