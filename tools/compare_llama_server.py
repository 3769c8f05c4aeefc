#!/usr/bin/env python3
"""One list of llama-server requests sent to llama.cpp's `llama-server` and to phi4-server on the
same GGUF file; the response shapes compared field by field.

For each request: every field path of either response (objects by key, arrays by their first
element) with its JSON type; a path is "same" when both have it with the same type, "different"
when the types differ, "missing" when only llama-server has it, "extra" when only phi4-server has
it. Streams are compared on their first and last data chunks. Greedy texts are shown side by side.
Embeddings run on a second pair of servers started with --embeddings --pooling mean (llama-server
then serves embeddings only).

Needs the pinned llama.cpp tools (bash tools/build_llama_bench.sh) and `make server`.

Usage: python3 tools/compare_llama_server.py [--model models/phi4-demo-q8_0.gguf]
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from bench_server import free_port, start  # noqa: E402  (start waits for /health to say ok)

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}, "required": ["name"]}
CHAT = [{"role": "user", "content": "Write a function that reads a file."}]
REQUESTS = [
    ("completion", "POST", "/v1/completions", {"prompt": "def fib(n):", "max_tokens": 12, "temperature": 0}),
    ("completion logprobs", "POST", "/v1/completions", {"prompt": "import", "max_tokens": 3, "temperature": 0, "logprobs": 2}),
    ("completion n_predict", "POST", "/v1/completions", {"prompt": "class", "n_predict": 6, "temperature": 0}),
    ("completion stream", "POST", "/v1/completions", {"prompt": "def", "max_tokens": 6, "temperature": 0, "stream": True}),
    ("chat", "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 12, "temperature": 0}),
    ("chat stream", "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 6, "temperature": 0, "stream": True}),
    ("chat logprobs", "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "temperature": 0, "logprobs": True,
                                                       "top_logprobs": 2}),
    ("grammar", "POST", "/v1/completions", {"prompt": "answer:", "grammar": 'root ::= "yes" | "no"', "max_tokens": 4,
                                            "temperature": 0}),
    ("json_schema", "POST", "/v1/completions", {"prompt": "config = ", "json_schema": SCHEMA, "max_tokens": 24,
                                                "temperature": 0}),
    ("response_format", "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 24, "temperature": 0,
                                                         "response_format": {"type": "json_object"}}),
    ("sampling extensions", "POST", "/v1/completions", {"prompt": "x", "max_tokens": 4, "typical_p": 0.8, "mirostat": 2,
                                                        "seed": 3, "repeat_last_n": 32}),
    ("tokenize", "POST", "/tokenize", {"content": "Hello, world!"}),
    ("tokenize pieces", "POST", "/tokenize", {"content": "Hello, world!", "with_pieces": True}),
    ("detokenize", "POST", "/detokenize", {"tokens": [9906, 11, 1917, 0]}),
    ("props", "GET", "/props", None),
    ("models", "GET", "/v1/models", None),
    ("health", "GET", "/health", None),
]
EMBEDDING_REQUESTS = [
    ("embeddings", "POST", "/v1/embeddings", {"input": ["import os", "def main():"], "model": "x"}),
    ("embeddings base64", "POST", "/v1/embeddings", {"input": "import os", "encoding_format": "base64"}),
]


def send(port, method, path, body):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=120)
        status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if body and body.get("stream"):
        chunks = [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: ") and l[6:].strip() != "[DONE]"]
        return status, {"first chunk": chunks[0] if chunks else None, "last chunk": chunks[-1] if chunks else None}
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def paths(x, prefix=""):
    """{path: JSON type} of every field."""
    out = {}
    if isinstance(x, dict):
        for k, v in x.items():
            out[f"{prefix}.{k}"] = kind(v)
            out.update(paths(v, f"{prefix}.{k}"))
    elif isinstance(x, list) and x:
        out.update(paths(x[0], prefix + "[]"))
    return out


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def text_of(body):
    try:
        c = body["choices"][0]
        return c.get("text", (c.get("message") or {}).get("content"))
    except (KeyError, IndexError, TypeError):
        return None


def compare(requests, llama_port, phi4_port, totals):
    for name, method, path, body in requests:
        s1, a = send(llama_port, method, path, body)
        s2, b = send(phi4_port, method, path, body)
        pa, pb = paths(a), paths(b)
        same = [p for p in pa if p in pb and (pa[p] == pb[p] or "null" in (pa[p], pb[p]))]
        different = [p for p in pa if p in pb and p not in same]
        missing = [p for p in pa if p not in pb]
        extra = [p for p in pb if p not in pa]
        for key, val in (("same", same), ("different", different), ("missing", missing), ("extra", extra)):
            totals[key] += len(val)
        print(f"{name:22s} {method} {path}: status {s1} / {s2}; fields same {len(same)}, different {len(different)}, "
              f"missing {len(missing)}, extra {len(extra)}")
        for label, val in (("different", different), ("missing", missing), ("extra", extra)):
            if val:
                print(f"    {label}: {', '.join(val[:12])}{' …' if len(val) > 12 else ''}")
        ta, tb = text_of(a), text_of(b)
        if ta is not None or tb is not None:
            print(f"    text: llama-server {ta!r} / phi4-server {tb!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"))
    ap.add_argument("--llama-server", default=os.path.join(ROOT, ".build-llama", "bin", "llama-server"))
    ap.add_argument("--phi4-server", default=os.path.join(ROOT, "Server", ".build", "release", "phi4-server"))
    args = ap.parse_args()
    totals = {"same": 0, "different": 0, "missing": 0, "extra": 0}
    for requests, extra_flags in ((REQUESTS, []), (EMBEDDING_REQUESTS, ["--embeddings", "--pooling", "mean"])):
        lp, pp = free_port(), free_port()
        llama = start([args.llama_server, "-m", args.model, "--port", str(lp), "-t", "2", "-c", "2048", "-np", "1",
                       *extra_flags], lp)
        phi4 = start([args.phi4_server, "-m", args.model, "--port", str(pp), "-t", "2", "-c", "2048", "-np", "1",
                      *extra_flags], pp)
        try:
            compare(requests, lp, pp, totals)
        finally:
            for p in (llama, phi4):
                p.terminate()
                p.wait(timeout=30)
    print(f"fields: same {totals['same']}, different {totals['different']}, missing {totals['missing']}, "
          f"extra {totals['extra']}")


if __name__ == "__main__":
    sys.exit(main())
