#!/usr/bin/env python3
"""Constrained output measured by the official JSON-Schema-Test-Suite (draft 2020-12).

The suite (inside the `jsonschema` sdist on PyPI, `json/tests/draft2020-12/`) gives, per keyword
file, schemas with instances marked valid and invalid. For every schema this compiles the grammar
that masks generation (`phi4 dev match`) and:
  - matches each valid instance in the engine's own spelling (`phi4 dev match --canonical`, with
    the schema's member order);
  - matches each invalid instance in that spelling and in other spellings a grammar might admit
    (spaces after separators, non-ASCII and escapes as `\\uXXXX`, integers written as `N.0`);
  - walks the grammar at random (`phi4 dev match --walks`) to complete documents and validates
    each with `jsonschema` (Draft202012Validator with its format checker).
Per keyword file it counts schemas refused (the compiler says it cannot), and instances:
  unsound    — an invalid instance accepted (in any spelling);
  incomplete — a valid instance rejected;
  restricted — a valid instance rejected only by a documented generation restriction (the grammar
               compiled `--without-restrictions` accepts it);
  correct    — the rest;
and walks: how many documents the random walks produced and how many `jsonschema` rejected
(unsound walks), and how many repeat a property name (JSON leaves their meaning open).

With --llguidance it runs llguidance (PyPI) on the same cases: its JSON compiler with its default
options (flexible whitespace, additional properties allowed unless forbidden, `oneOf` not coerced,
not lenient), its matcher over a byte-level tokenizer, each valid instance in its serialization
(compact, members in the schema's `properties` order, else the instance's), each invalid instance
in the same spellings as ours; and prints its table beside ours.

The optional/ directory and the files needing remote references are left out (listed in SKIP).

Needs: the jsonschema sdist (downloaded with pip into .build/json-schema-suite), the `jsonschema`
package, `swift build -c release --product phi4`; `llguidance` for --llguidance.
Usage: python3 tools/json_schema_suite.py [--suite DIR] [--json OUT] [--files type,enum]
           [--walks N] [--llguidance] [--markdown] [--check]
--check exits 1 when anything is unsound (make test runs it with a few walks).
"""
import argparse
import collections
import glob
import json
import os
import random
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")
SKIP = {"refRemote.json": "references to remote schemas", "vocabulary.json": "meta-schema vocabularies (remote)"}
COLUMNS = ["schemas", "refused", "instances", "unsound", "incomplete", "restricted", "correct", "not checked"]


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


def phi4(args, lines=()):
    """Runs phi4 dev match with JSON-string lines on stdin; returns (answers, error)."""
    r = subprocess.run([PHI4, "dev", "match"] + args, input="".join(json.dumps(t) + "\n" for t in lines),
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["?"])[-1]
    return [json.loads(line) for line in r.stdout.split("\n") if line], None  # (not splitlines: U+2028 is text)


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
    try:
        out.add(json.dumps(floats(value), separators=(",", ":")))
    except OverflowError:
        pass
    return sorted(out)


def integral(v):
    """The value with integral floats as integers (1.0 as 1)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return int(v)
    if isinstance(v, list):
        return [integral(x) for x in v]
    if isinstance(v, dict):
        return {k: integral(x) for k, x in v.items()}
    return v


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise KeyError("repeated property name")
    return dict(pairs)


def check_walks(schema, docs, row, unsound, name, desc):
    import jsonschema
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for d in docs:
        if d is None:
            continue
        row["walks"] += 1
        try:
            value = json.loads(d, object_pairs_hook=no_duplicates)
        except KeyError:
            row["repeated names"] += 1
            value = json.loads(d)
        except ValueError:
            row["walks unsound"] += 1
            unsound.append((name, desc, "walk is not JSON", d))
            continue
        if not validator.is_valid(value):
            row["walks unsound"] += 1
            unsound.append((name, desc, "walk", d))


class LLGuidance:
    """llguidance's JSON compiler and matcher over a byte-level tokenizer (token i = byte i)."""

    def __init__(self):
        import llguidance

        class Bytes:
            tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]
            eos_token_id, bos_token_id, special_token_ids = 256, None, [256]

            def __call__(self, s):
                return list(s.encode() if isinstance(s, str) else s)
        self.ll = llguidance
        self.tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Bytes()), slices=[])
        self.options = "llguidance %s, JsonCompileOptions defaults (whitespace_flexible, coerce_one_of false, lenient false)" % llguidance.get_version()

    def matcher(self, schema):
        try:
            g = self.ll.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        except Exception as e:  # noqa: BLE001 - a schema it cannot read is refused
            return None, str(e)
        m = self.ll.LLMatcher(self.tok, g, log_level=0)
        if m.is_error():
            return None, m.get_error()
        return m, None

    def matches(self, m0, text):
        m = m0.deep_copy()  # a matcher that consumed a refused token stays in its error state
        ok = m.consume_tokens(list(text.encode()))
        return bool(ok) and not m.is_error() and m.is_accepting()

    @staticmethod
    def spell(value, schema, root, depth=0):
        """Compact JSON with object members in the schema's `properties` order, then the others."""
        s = schema
        for _ in range(16):
            if isinstance(s, dict) and isinstance(s.get("$ref"), str) and s["$ref"].startswith("#") and len(s) == 1:
                node = root
                for part in s["$ref"][1:].split("/"):
                    if part == "":
                        continue
                    part = part.replace("~1", "/").replace("~0", "~")
                    node = node.get(part) if isinstance(node, dict) else None
                s = node
            else:
                break
        s = s if isinstance(s, dict) and depth < 64 else {}
        if isinstance(value, dict):
            props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
            order = [k for k in props if k in value] + [k for k in value if k not in props]
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" +
                                  LLGuidance.spell(value[k], props.get(k, s.get("additionalProperties")), root, depth + 1)
                                  for k in order) + "}"
        if isinstance(value, list):
            prefix = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else []
            return "[" + ",".join(LLGuidance.spell(v, prefix[i] if i < len(prefix) else s.get("items"), root, depth + 1)
                                  for i, v in enumerate(value)) + "]"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def run_ours(case, name, row, unsound, details, walks, seed):
    schema_text = json.dumps(case["schema"])
    tests = case["tests"]
    _, cerr = phi4(["--json-schema", schema_text])
    if cerr is not None:
        row["refused"] += 1
        row["not checked"] += len(tests)
        details.append((name, case["description"], "refused", cerr))
        return
    canon, err = phi4(["--json-schema", schema_text, "--jsonl", "--canonical"], [json.dumps(t["data"]) for t in tests])
    if canon is None:  # a value our JSON reader refuses (e.g. a number beyond double range)
        row["not checked"] += len(tests)
        return
    texts, owner = [], []
    for i, (t, c) in enumerate(zip(tests, canon)):
        for x in [c] + ([] if t["valid"] else spellings(t["data"])):
            texts.append(x)
            owner.append(i)
    answers, _ = phi4(["--json-schema", schema_text, "--jsonl"], texts)
    accepted = collections.defaultdict(list)
    for i, x, a in zip(owner, texts, answers):
        if a:
            accepted[i].append(x)
    rejected_valid = [i for i, t in enumerate(tests) if t["valid"] and not accepted[i]]
    relaxed = {}
    if rejected_valid:
        ra, _ = phi4(["--json-schema", schema_text, "--jsonl", "--without-restrictions"], [canon[i] for i in rejected_valid])
        relaxed = dict(zip(rejected_valid, ra or [False] * len(rejected_valid)))
    for i, t in enumerate(tests):
        if t["valid"]:
            if accepted[i]:
                row["correct"] += 1
            elif relaxed.get(i):
                row["restricted"] += 1
            else:
                row["incomplete"] += 1
                details.append((name, case["description"], "incomplete", t["description"] + ": " + canon[i]))
        elif accepted[i]:
            row["unsound"] += 1
            unsound.append((name, case["description"], t["description"], accepted[i][0]))
        else:
            row["correct"] += 1
    if walks:
        docs, _ = phi4(["--json-schema", schema_text, "--walks", str(walks), "--seed", str(seed)])
        check_walks(case["schema"], docs or [], row, unsound, name, case["description"])


def run_llguidance(llg, case, row, name, details):
    tests = case["tests"]
    m, err = llg.matcher(case["schema"])
    if m is None:
        row["refused"] += 1
        row["not checked"] += len(tests)
        return
    for t in tests:
        if t["valid"]:
            texts = {LLGuidance.spell(v, case["schema"], case["schema"]) for v in (t["data"], integral(t["data"]))}
            texts.add(json.dumps(t["data"], ensure_ascii=False, separators=(",", ":")))
            ok = any(llg.matches(m, x) for x in texts)
            row["correct" if ok else "incomplete"] += 1
            if not ok:
                details.append((name, case["description"], "llguidance incomplete", t["description"] + ": " + sorted(texts)[0]))
        else:
            texts = [LLGuidance.spell(t["data"], case["schema"], case["schema"])] + spellings(t["data"])
            row["unsound" if any(llg.matches(m, x) for x in texts) else "correct"] += 1


def table(rows, columns):
    out = []
    for name, row in rows.items():
        out.append(f"{name:24} " + " ".join(f"{k} {row[k]}" for k in columns))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite")
    ap.add_argument("--json")
    ap.add_argument("--files")
    ap.add_argument("--walks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--llguidance", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the per-keyword table as Markdown")
    ap.add_argument("--details", action="store_true", help="print every refusal and incomplete instance")
    ap.add_argument("--check", action="store_true", help="exit 1 when anything is unsound")
    fixtures = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "constraints")
    ap.add_argument("--own", default=",".join(os.path.join(fixtures, f) for f in ("schemas.json", "combinations.json")),
                    help="also walk these schemas (comma-separated JSON lists of {name, schema}: the constrained-output "
                         "suite's and combinations of keywords) ('' for none)")
    args = ap.parse_args()
    d = suite_dir(args.suite)
    files = sorted(f for f in glob.glob(os.path.join(d, "*.json")) if os.path.basename(f) not in SKIP)
    if args.files:
        files = [f for f in files if os.path.basename(f)[:-5] in args.files.split(",")]
    llg = LLGuidance() if args.llguidance else None
    ours, theirs, unsound, details = {}, {}, [], []
    walk_cols = ["walks", "walks unsound", "repeated names"]
    for path in files:
        name = os.path.basename(path)[:-5]
        row = dict.fromkeys(COLUMNS + walk_cols, 0)
        lrow = dict.fromkeys(COLUMNS, 0)
        for n, case in enumerate(json.load(open(path))):
            row["schemas"] += 1
            row["instances"] += len(case["tests"])
            run_ours(case, name, row, unsound, details, args.walks, args.seed * 1000 + n)
            if llg:
                lrow["schemas"] += 1
                lrow["instances"] += len(case["tests"])
                run_llguidance(llg, case, lrow, name, details)
        ours[name] = row
        theirs[name] = lrow
        print(table({name: row}, COLUMNS + walk_cols)[0] + ("   | llguidance " + " ".join(f"{k} {lrow[k]}" for k in COLUMNS[1:] if k not in ("instances", "restricted")) if llg else ""), flush=True)
    own_unsound = 0
    for own in (args.own.split(",") if args.own and not args.files else []):
        row = dict.fromkeys(walk_cols, 0)
        refused = 0
        for n, case in enumerate(json.load(open(own))):
            docs, err = phi4(["--json-schema", json.dumps(case["schema"]), "--walks", str(args.walks), "--seed", str(args.seed * 1000 + n)])
            if err is not None:
                refused += 1
                details.append((os.path.basename(own), case["name"], "refused", err))
            check_walks(case["schema"], docs or [], row, unsound, "own", case["name"])
        print(f"{os.path.basename(own):24} " + " ".join(f"{k} {row[k]}" for k in walk_cols) + f" refused {refused} ({os.path.relpath(own, ROOT)})")
        own_unsound += row["walks unsound"]
    total = {k: sum(r[k] for r in ours.values()) for k in COLUMNS + walk_cols}
    ltotal = {k: sum(r[k] for r in theirs.values()) for k in COLUMNS}
    print(table({"TOTAL": total}, COLUMNS + walk_cols)[0])
    if llg:
        print(table({"TOTAL llguidance": ltotal}, COLUMNS)[0])
        print("llguidance options:", llg.options)
    print("left out:", ", ".join(f"{k} ({v})" for k, v in SKIP.items()) + ", optional/")
    for u in unsound:
        print("unsound:", *u)
    if args.details:
        for x in details:
            print(*x)
    if args.markdown:
        cols = ["refused", "unsound", "incomplete", "restricted", "correct"]
        head = "| keyword file | schemas | instances | " + " | ".join(cols) + " | walks (unsound) |"
        lcols = ["refused", "unsound", "incomplete", "correct"]
        if llg:
            head += " llguidance " + " / ".join(lcols) + " |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for name in list(ours) + ["TOTAL"]:
            r = total if name == "TOTAL" else ours[name]
            line = f"| {name} | {r['schemas']} | {r['instances']} | " + " | ".join(str(r[c]) for c in cols) + f" | {r['walks']} ({r['walks unsound']}) |"
            if llg:
                lr = ltotal if name == "TOTAL" else theirs[name]
                line += " " + " / ".join(str(lr[c]) for c in lcols) + " |"
            print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": ours, "total": total, "unsound": unsound, "llguidance": theirs if llg else None,
                       "llguidance total": ltotal if llg else None, "details": details}, f, indent=1)
    if args.check and (total["unsound"] or total["walks unsound"] or own_unsound):
        sys.exit(1)


if __name__ == "__main__":
    main()
