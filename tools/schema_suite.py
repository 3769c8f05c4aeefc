#!/usr/bin/env python3
"""Constrained JSON output checked by an independent validator.

For every schema of Tests/Phi4Tests/Fixtures/constraints/schemas.json (or --schemas FILE: a JSON
list of {"name", "schema"}), `phi4 generate --json-schema-file` writes outputs with several seeds at
temperature 1 on the demo model, and the PyPI `jsonschema` package (with its format checker)
validates each one: every output must parse and validate. Then a few regular expressions with
`phi4 generate --regex`: every output must satisfy Python's `re.fullmatch`. Prints one line per
schema and the totals; exits 1 on any failure.

Needs: pip install jsonschema
Usage: python3 tools/schema_suite.py [--seeds 3] [--max-tokens 512] [--limit N] [--phi4 PATH]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import jsonschema

REGEXES = [r"[a-z]{3,6}@[a-z]+\.(com|org)", r"\d{4}-\d{2}-\d{2}", r"(yes|no|maybe)", r"[A-Z][a-z]+( [a-z]+){2,4}\.",
           r"0x[0-9a-f]{1,8}", r"[^\n]{5,20}"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", default=os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "constraints", "schemas.json"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"))
    ap.add_argument("--phi4", default=os.path.join(ROOT, ".build", "release", "phi4"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--limit", type=int, default=0, help="only the first N schemas")
    args = ap.parse_args()
    cases = json.load(open(args.schemas))
    if args.limit:
        cases = cases[:args.limit]
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER  # this draft's formats (time with an offset)
    failed = total = 0
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            path = os.path.join(tmp, "schema.json")
            with open(path, "w") as f:
                json.dump(case["schema"], f)
            ok = 0
            for seed in range(args.seeds):
                total += 1
                r = subprocess.run([args.phi4, "generate", "--model", args.model, "--prompt", "JSON:", "--json-schema-file", path,
                                    "--max-tokens", str(args.max_tokens), "--temperature", "1", "--seed", str(seed)],
                                   capture_output=True, text=True)
                text = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
                try:
                    if r.returncode != 0:
                        raise ValueError(r.stderr.strip())
                    value = json.loads(text)
                    jsonschema.Draft202012Validator(case["schema"], format_checker=checker).validate(value)
                    ok += 1
                except Exception as e:  # noqa: BLE001 - report every kind of failure
                    failed += 1
                    print(f"FAIL {case['name']} seed {seed}: {str(e).splitlines()[0][:200]}\n  output: {text[:300]!r}")
            print(f"{case['name']:28s} {ok}/{args.seeds} valid")
        for pattern in REGEXES:
            for seed in range(args.seeds):
                total += 1
                r = subprocess.run([args.phi4, "generate", "--model", args.model, "--prompt", "Text:", "--regex", pattern,
                                    "--max-tokens", str(args.max_tokens), "--temperature", "1", "--seed", str(seed)],
                                   capture_output=True, text=True)
                text = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
                if r.returncode != 0 or not re.fullmatch(pattern, text):
                    failed += 1
                    print(f"FAIL regex {pattern!r} seed {seed}: {text[:200]!r} {r.stderr.strip()[:200]}")
            print(f"regex {pattern!r}: checked")
    print(f"{total - failed}/{total} outputs parse and validate ({len(cases)} schemas, {args.seeds} seeds, "
          f"max_tokens {args.max_tokens}, {time.time() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
