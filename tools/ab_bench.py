#!/usr/bin/env python3
"""A/B timing of two builds of the `phi4` tool on the same file, alternating runs (A B B A A B …)
so that machine drift hits both: prefill and decode tok/s of each run, then the medians and the
ratio B/A. Use it to time a change against the previous commit (build the previous commit in a
git worktree: `git worktree add /tmp/prev HEAD~1 && (cd /tmp/prev && swift build -c release
--product phi4)`).

Usage: python3 tools/ab_bench.py A_PHI4 B_PHI4 FILE.gguf [-p 512] [-n 32] [-t 2] [-r 3]
"""
import argparse
import json
import statistics
import subprocess


def run(phi4, path, p, n, t):
    out = subprocess.run([phi4, "bench", "--model", path, "-p", str(p), "-n", str(n), "-t", str(t), "-r", "1", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=3)
    args = ap.parse_args()
    res = {"A": [], "B": []}
    for r in range(args.r):
        for who in (("A", "B") if r % 2 == 0 else ("B", "A")):
            o = run(args.a if who == "A" else args.b, args.model, args.p, args.n, args.t)
            res[who].append(o)
            print(f"round {r + 1} {who}: pp{args.p} {o.get('pp_tps', 0):.2f} tok/s, tg{args.n} {o.get('tg_tps', 0):.2f} tok/s",
                  flush=True)
    for key, label in (("pp_tps", f"prefill pp{args.p}"), ("tg_tps", f"decode tg{args.n}")):
        a = [o[key] for o in res["A"] if key in o]
        b = [o[key] for o in res["B"] if key in o]
        if a and b:
            print(f"{label}: A {statistics.median(a):.2f} ({min(a):.2f}-{max(a):.2f}), "
                  f"B {statistics.median(b):.2f} ({min(b):.2f}-{max(b):.2f}), B/A {statistics.median(b) / statistics.median(a):.3f}")


if __name__ == "__main__":
    main()
