#!/usr/bin/env python3
"""llama-cpp-python and phi4.Llama side by side: the usage snippets of
bindings/python/tests/llama_snippets.py (llama-cpp-python's README and docs examples, rewritten for
the demo model) run unchanged against `llama_cpp.Llama` and `phi4.Llama` on the same GGUF file.

Reports, per snippet: the same response keys and value types (every snippet), and for the greedy
ones whether the results are identical (numbers within llama_compare's tolerance), with the
log-probability gap (by libphi4) between the two engines' tokens where a text first differs. Writes the
reference the package's tests compare phi4 with (bindings/python/tests/fixtures/llama_cpp_reference.json).

Needs llama-cpp-python (pinned: pip install llama-cpp-python==0.3.36, which builds llama.cpp from
its sdist with CMake, ~10 minutes) and the phi4 package (pip install ./bindings/python, or
PYTHONPATH=bindings/python with PHI4_LIBRARY=lib/libphi4.so.1 after `make lib`).

Usage: python3 tools/compare_llama_cpp_python.py [--model models/phi4-demo-q8_0.gguf] [--write]
"""
import argparse
import json
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
FIXTURE = os.path.join(ROOT, "bindings", "python", "tests", "fixtures", "llama_cpp_reference.json")

import llama_compare  # noqa: E402
import llama_snippets  # noqa: E402


def run(module, name, path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {"ok": True, "value": llama_compare.plain(llama_snippets.SNIPPETS[name](module, path))}
    except Exception as e:  # a snippet one engine cannot run is reported, not fatal
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def texts(value):
    """The generated texts in a result (completion and chat shapes)."""
    out = []
    if isinstance(value, dict):
        for c in value.get("choices", []) or []:
            if isinstance(c, dict):
                t = c.get("text", (c.get("message") or {}).get("content"))
                if isinstance(t, str):
                    out.append(t)
        for v in value.values():
            if isinstance(v, (dict, list)):
                out += texts(v)
    elif isinstance(value, list):
        for v in value:
            out += texts(v)
    return out


def margin_at_difference(phi4, path, prompt, options, ours, theirs):
    """Where the two generated texts part: libphi4's log-probability of its token minus that of
    the token llama.cpp's text continues with (raw, before penalties; a small gap is a near-tie
    that two engines' rounding decides differently). None when llama.cpp's token is not among
    libphi4's top 10 there."""
    llm = phi4.Llama(model_path=path, logits_all=True, verbose=False)
    out = llm(prompt, temperature=0, logprobs=10, **options)
    lp = out["choices"][0]["logprobs"]
    pos = 0
    for tok, top in zip(lp["tokens"], lp["top_logprobs"]):
        if ours[pos:pos + len(tok)] == tok and theirs[pos:pos + len(tok)] == tok:
            pos += len(tok)
            continue
        alts = [(k, v) for k, v in top.items() if k and theirs[pos:].startswith(k) and k != tok]
        if not alts:
            return None
        return top[tok] - max(v for _, v in alts)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"))
    ap.add_argument("--write", action="store_true", help="write the test fixture")
    args = ap.parse_args()
    import llama_cpp
    import phi4
    print(f"llama-cpp-python {llama_cpp.__version__}, phi4 {phi4.__version__}, model {os.path.relpath(args.model, ROOT)}")
    reference = {"llama_cpp_python": llama_cpp.__version__, "snippets": {}}
    same_shape = identical = greedy = 0
    for name in llama_snippets.SNIPPETS:
        ref = run(llama_cpp, name, args.model)
        ours = run(phi4, name, args.model)
        is_greedy = name in llama_snippets.GREEDY
        if not ref["ok"] or not ours["ok"]:
            print(f"  {name:32s} llama.cpp: {ref.get('error', 'ok')}; phi4: {ours.get('error', 'ok')}")
            continue
        shape_ok = llama_compare.shape(ref["value"]) == llama_compare.shape(ours["value"])
        same_shape += shape_ok
        line = f"  {name:32s} shape {'same' if shape_ok else 'DIFFERENT'}"
        diff = llama_compare.first_difference(ours["value"], ref["value"]) if is_greedy else None
        if is_greedy:
            greedy += 1
            identical += diff is None
            line += ", identical" if diff is None else f", differs at {diff}"
            if diff:
                ta, tb = texts(ours["value"]), texts(ref["value"])
                spec = llama_snippets.PROMPTS.get(name)
                for x, y in zip(ta, tb):
                    if x != y and spec is not None:
                        gap = margin_at_difference(phi4, args.model, spec[0], spec[1], x, y)
                        line += " (log-probability gap there: " + ("n/a" if gap is None else f"{gap:.4f}") + ")"
                        break
        print(line)
        if not shape_ok:
            print(f"      llama.cpp: {json.dumps(llama_compare.shape(ref['value']))[:300]}")
            print(f"      phi4:      {json.dumps(llama_compare.shape(ours['value']))[:300]}")
        reference["snippets"][name] = {"greedy": is_greedy, "shape": llama_compare.shape(ref["value"]),
                                       "value": ref["value"] if is_greedy else None,
                                       "phi4_identical": is_greedy and diff is None}
    total = len(llama_snippets.SNIPPETS)
    print(f"same keys and types: {same_shape}/{total}; greedy identical: {identical}/{greedy} "
          f"({100 * identical / max(greedy, 1):.0f} %)")
    if args.write:
        os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
        # The model's path appears in responses ("model"); the fixture keeps it relative to the checkout.
        text = json.dumps(reference, indent=1, sort_keys=True).replace(json.dumps(args.model)[1:-1],
                                                                         os.path.relpath(args.model, ROOT))
        with open(FIXTURE, "w") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(FIXTURE, ROOT)}")


if __name__ == "__main__":
    main()
