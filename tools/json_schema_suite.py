#!/usr/bin/env python3
"""Constrained output measured by the official JSON-Schema-Test-Suite (draft 2020-12).

The suite (inside the `jsonschema` sdist on PyPI, `json/tests/draft2020-12/`) gives, per keyword
file, schemas with instances marked valid and invalid. For every schema this compiles the grammar
that masks generation (`phi4 dev match`) and matches:
  - each valid instance in the engine's own spelling (`phi4 dev match --canonical`, with the
    schema's member order);
  - each invalid instance in that spelling and in other spellings a grammar might admit (spaces
    after separators, non-ASCII escaped, integers written as `N.0`).
Per keyword file it counts schemas refused (the compiler says it cannot), and instances:
  unsound    — an invalid instance accepted (in any spelling);
  incomplete — a valid instance rejected;
  correct    — the rest.
(Still to come: random walks of each grammar validated by `jsonschema`, the "restricted" class
— valid instances rejected only by a documented generation restriction —, and llguidance's table
beside ours.) The optional/ directory and the files needing remote references are left out.

Needs: the jsonschema sdist (downloaded with pip), swift build -c release --product phi4.
Usage: python3 tools/json_schema_suite.py [--suite DIR] [--json OUT] [--files type,enum]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")
SKIP = {"refRemote.json", "vocabulary.json"}  # remote references; meta-schema vocabularies


def suite_dir(given):
    if given:
        return given
    cache = os.path.join(ROOT, ".build", "json-schema-suite")
    found = glob.glob(os.path.join(cache, "jsonschema-*", "json", "tests", "draft2020-12"))
    if found:
        return found[0]
    os.makedirs(cache, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "jsonschema", "jsonschema==4.26.0",
                    "-d", cache], check=True, capture_output=True)
    with tarfile.open(glob.glob(os.path.join(cache, "jsonschema-*.tar.gz"))[0]) as t:
        t.extractall(cache)
    return glob.glob(os.path.join(cache, "jsonschema-*", "json", "tests", "draft2020-12"))[0]


def match_lines(schema_text, texts, canonical=False):
    """Runs phi4 dev match --jsonl; returns (answers, error)."""
    args = [PHI4, "dev", "match", "--json-schema", schema_text, "--jsonl"] + (["--canonical"] if canonical else [])
    r = subprocess.run(args, input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["?"])[-1]
    return [json.loads(line) for line in r.stdout.splitlines()], None


def spellings(value):
    """Other spellings of a JSON value a grammar might admit."""
    out = {json.dumps(value), json.dumps(value, ensure_ascii=False, separators=(", ", ": "))}

    def floats(v):
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return float(v)
        if isinstance(v, list):
            return [floats(x) for x in v]
        if isinstance(v, dict):
            return {k: floats(x) for k, x in v.items()}
        return v
    out.add(json.dumps(floats(value), separators=(",", ":")))
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite")
    ap.add_argument("--json")
    ap.add_argument("--files")
    args = ap.parse_args()
    d = suite_dir(args.suite)
    files = sorted(f for f in glob.glob(os.path.join(d, "*.json")) if os.path.basename(f) not in SKIP)
    if args.files:
        files = [f for f in files if os.path.basename(f)[:-5] in args.files.split(",")]
    table, unsound_cases = {}, []
    for path in files:
        name = os.path.basename(path)[:-5]
        row = {"schemas": 0, "refused": 0, "instances": 0, "unsound": 0, "incomplete": 0, "correct": 0, "not checked": 0}
        for case in json.load(open(path)):
            row["schemas"] += 1
            schema_text = json.dumps(case["schema"])
            tests = case["tests"]
            row["instances"] += len(tests)
            canon, err = match_lines(schema_text, [json.dumps(t["data"]) for t in tests], canonical=True)
            compiled, cerr = match_lines(schema_text, [])
            if cerr is not None:
                row["refused"] += 1
                row["not checked"] += len(tests)
                continue
            if canon is None:  # a value our JSON reader refuses (e.g. a number beyond double range)
                row["not checked"] += len(tests)
                continue
            for t, c in zip(tests, canon):
                texts = [c] + ([] if t["valid"] else spellings(t["data"]))
                answers, _ = match_lines(schema_text, texts)
                if t["valid"]:
                    row["correct" if answers[0] else "incomplete"] += 1
                elif any(answers):
                    row["unsound"] += 1
                    unsound_cases.append((name, case["description"], t["description"], [x for x, a in zip(texts, answers) if a][0]))
                else:
                    row["correct"] += 1
        table[name] = row
        print(f"{name:24} " + " ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    total = {k: sum(r[k] for r in table.values()) for k in next(iter(table.values()))}
    print(f"{'TOTAL':24} " + " ".join(f"{k} {v}" for k, v in total.items()))
    for u in unsound_cases:
        print("unsound:", *u)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": table, "total": total, "unsound": unsound_cases}, f, indent=1)


if __name__ == "__main__":
    main()
