#!/usr/bin/env python3
"""Token-mask speed side by side with llguidance (PyPI), on the same schemas, tokens and vocabulary.

`phi4 dev mask-bench --dump` generates a greedy constrained output for every schema on the demo
model, replays it on a fresh constraint (empty caches) and times each mask on one thread; it
writes the schemas, tokens and times to a file. This script then replays the same tokens through
llguidance's LLMatcher built from the same tokenizer.json (Phi-4's, 100,352 ids), timing
`compute_bitmask` before each token on a fresh matcher per schema. Masks are compared only where
both engines ran: schemas llguidance refuses, and tokens after llguidance rejects one of our
outputs, are counted and left out. llguidance admits only the canonical token where the grammar
forces the bytes (e.g. "null" as one token, where we allow "n" too), so it replays the same text:
our token where it allows it, otherwise the longest token it allows that spells the next bytes.
Prints median, p90, p99 and max per engine and the compile times.

Both time a whole mask over the vocabulary; llguidance's is a bit set and ours 2 bytes per token
(the fewest bytes to finish after it, for the budget), and the Python call adds about a microsecond
to llguidance's times. llguidance's JSON is asked for flexible whitespace, so that it accepts
our outputs' spacing.

Needs: pip install llguidance
Usage: python3 tools/llguidance_bench.py [--phi4 .build/release/phi4] [--schemas FILE] [--max-tokens 128]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quantiles(xs):
    xs = sorted(xs)
    if not xs:
        return "n/a"
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return f"median {q(0.5):.1f}, p90 {q(0.9):.1f}, p99 {q(0.99):.1f}, max {xs[-1]:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phi4", default=os.path.join(ROOT, ".build/release/phi4"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/phi4-demo-q8_0.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "Tests/Phi4Tests/Fixtures/tokenizer/phi4/tokenizer.json"))
    ap.add_argument("--schemas", default=os.path.join(ROOT, "Tests/Phi4Tests/Fixtures/constraints/schemas.json"))
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()

    import llguidance

    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "masks.json")
        out = subprocess.run([args.phi4, "dev", "mask-bench", "--model", args.model, "--schemas", args.schemas,
                              "--max-tokens", str(args.max_tokens), "--dump", dump],
                             check=True, capture_output=True, text=True).stdout
        print(out.strip())
        runs = json.load(open(dump))

    with open(args.tokenizer) as f:
        tok = llguidance.LLTokenizer(f.read(), n_vocab=100352)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")

    vocab = [tok.decode_bytes([t]) for t in range(100352)]
    by_prefix = {}
    for t, b in enumerate(vocab):
        if b and not tok.is_special_token(t):
            by_prefix.setdefault(b[:1], []).append(t)
    for k in by_prefix:
        by_prefix[k].sort(key=lambda t: -len(vocab[t]))

    def candidates(text, at):
        for t in by_prefix.get(text[at:at + 1], []):
            if text.startswith(vocab[t], at):
                yield t

    offsets = {}
    for r in runs:
        o, at = [], 0
        for t in r["tokens"]:
            o.append(at)
            at += len(vocab[t])
        offsets[r["name"]] = o

    ours, theirs, ours_compile, their_compile = [], [], [], []
    refused, rejected = [], []
    their_by_name = {}
    for r in runs:
        schema = json.loads(r["schema"])
        if isinstance(schema, dict):
            schema = dict(schema)
            schema["x-guidance"] = {"whitespace_flexible": True, "lenient": False}
        t0 = time.perf_counter()
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
        m = llguidance.LLMatcher(tok, grammar, log_level=0)
        t1 = time.perf_counter()
        if m.is_error():
            refused.append((r["name"], m.get_error()[:100]))
            continue
        their_compile.append((t1 - t0) * 1e6)
        ours_compile.append(r["compile_us"])
        ours += r["mask_us"]
        # The same text, token by token: our token where llguidance allows it, else the longest
        # token it allows that spells the text's next bytes (llguidance admits only the
        # canonical token where the grammar forces the bytes, e.g. "null" as one token).
        text = b"".join(vocab[t] for t in r["tokens"])
        at, i = 0, 0
        while at < len(text):
            a = time.perf_counter()
            mask = m.compute_bitmask()
            b = time.perf_counter()
            theirs.append((b - a) * 1e6)
            their_by_name.setdefault(r["name"], []).append((b - a) * 1e6)
            allowed = lambda t: (mask[t >> 3] >> (t & 7)) & 1
            t = r["tokens"][i] if i < len(r["tokens"]) and at == offsets[r["name"]][i] and allowed(r["tokens"][i]) else None
            if t is None:
                t = next((c for c in candidates(text, at) if allowed(c)), None)
            if t is None or not m.consume_token(t) or m.is_error():
                rejected.append((r["name"], text[:at].decode("utf-8", "replace")[-20:]))
                break
            at += len(vocab[t])
            while i < len(r["tokens"]) and offsets[r["name"]][i] < at:
                i += 1

    print(f"cpu {cpu}; vocabulary 100352; {len(runs)} schemas, {len(runs) - len(refused)} compiled by both, "
          f"{len(ours)} masks by libphi4, {len(theirs)} by llguidance")
    print(f"libphi4     mask µs: {quantiles(ours)}")
    print(f"llguidance  mask µs: {quantiles(theirs)}  (llguidance {llguidance.get_version() if hasattr(llguidance, 'get_version') else '?'})")
    done = [r for r in runs if r["name"] not in {n for n, _ in rejected} and r["name"] not in {n for n, _ in refused}]
    print(f"on the {len(done)} schemas whose outputs llguidance replays to the end:")
    print(f"  libphi4     mask µs: {quantiles([x for r in done for x in r['mask_us']])}")
    print(f"  llguidance  mask µs: {quantiles([x for r in done for x in their_by_name[r['name']]])}")
    print(f"libphi4     compile µs: {quantiles(ours_compile)}")
    print(f"llguidance  compile µs: {quantiles(their_compile)}  (grammar_from_json_schema + LLMatcher)")
    if refused:
        print(f"llguidance refused {len(refused)} schemas: " + "; ".join(f"{n} ({e})" for n, e in refused[:8]))
    if rejected:
        print(f"llguidance rejects {len(rejected)} of our outputs (it fixes the property order and checks e-mail"
              f" domains more strictly; its masks stop there): " + "; ".join(f"{n} after {t!r}" for n, t in rejected[:12]))


if __name__ == "__main__":
    sys.exit(main())
