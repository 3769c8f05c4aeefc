#!/usr/bin/env python3
"""Side-by-side speed and memory: libphi4 vs llama.cpp on the same GGUF file, same threads.

Runs alternate (ours, llama.cpp, ours, …) so that machine noise hits both; each run is a fresh
process, so load time and peak RSS are per run. Between decode runs the machine's read bandwidth
is measured (tools/membw.c: 2-thread sequential read of a 4 GiB buffer, median of 5), and decode
is reported also as a fraction of it (bytes of weights read per token / bandwidth).

Reference: llama.cpp, either
  --llama-bench PATH   llama.cpp's own `llama-bench` (tools/build_llama_bench.sh builds it from the
                       llama.cpp vendored in the pinned llama-cpp-python sdist, with CMake, native
                       CPU flags); each round is `llama-bench -m FILE -p P -n N -r 1 -t T -o json`,
                       which times prefill and decode separately as we do (no load time or RSS);
  or (default) PyPI `llama-cpp-python` (pip install llama-cpp-python; it builds llama.cpp from source
  with the machine's CPU features, ~10 minutes), timed in Python, with load time and peak RSS.
Make files with: phi4 dev random-model --type q4_0 --tokenizer DIR --out phi4-q4_0.gguf

Usage: python3 tools/bench_vs_llamacpp.py FILE.gguf [-p 512] [-n 32] [-t 2] [-r 3] [--llama-bench PATH]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")

LLAMA_RUN = r'''
import json, random, resource, sys, time
t0 = time.perf_counter()
import llama_cpp
path, p, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=path, n_ctx=p + n + 16, n_threads=t, n_threads_batch=t, n_batch=512,
                      n_ubatch=512, verbose=False)
rng = random.Random(0)
ids = [rng.randrange(100000) for _ in range(max(p, 1))]
llm.eval([ids[0]])
load = time.perf_counter() - t0
llm.reset()
out = {"load_s": load}
if p > 0:
    a = time.perf_counter(); llm.eval(ids); out["pp_tps"] = p / (time.perf_counter() - a)
else:
    llm.eval([ids[0]])
if n > 0:
    tok = ids[-1]
    b = time.perf_counter()
    for i in range(n):
        llm.eval([tok]); tok = ids[i % len(ids)]
    out["tg_tps"] = n / (time.perf_counter() - b)
out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out["version"] = llama_cpp.__version__
print(json.dumps(out))
'''


def run_ours(path, p, n, t):
    out = subprocess.run([PHI4, "bench", "--model", path, "-p", str(p), "-n", str(n), "-t", str(t), "-r", "1", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_llama(path, p, n, t):
    out = subprocess.run([sys.executable, "-c", LLAMA_RUN, path, str(p), str(n), str(t)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_llama_bench(binary, path, p, n, t):
    """One round of llama-bench: prefill pp{p} and decode tg{n} as separate tests (its default)."""
    cmd = [binary, "-m", path, "-t", str(t), "-r", "1", "-o", "json"]
    cmd += ["-p", str(p)] if p > 0 else ["-p", "0"]
    cmd += ["-n", str(n)] if n > 0 else ["-n", "0"]
    rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    out = {"version": f"llama-bench {rows[0].get('build_commit', '?')}"}
    for row in rows:
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            out["pp_tps"] = row["avg_ts"]
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            out["tg_tps"] = row["avg_ts"]
    return out


def cpu_line():
    model, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    shown = [x for x in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16")
             if x in flags]
    return f"CPU: {model}, {os.cpu_count()} cpus, flags: {' '.join(shown)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--llama-bench", metavar="PATH", help="time llama.cpp with this llama-bench binary")
    args = ap.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "phi4"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        membw = os.path.join(tmp, "membw")
        subprocess.run(["cc", "-O2", "-pthread", os.path.join(ROOT, "tools", "membw.c"), "-o", membw], check=True)
        ours, theirs, bw = [], [], []
        for r in range(args.r):
            for who in ((0, 1) if r % 2 == 0 else (1, 0)):
                if who == 0:
                    ours.append(run_ours(args.model, args.p, args.n, args.t))
                else:
                    theirs.append(run_llama_bench(args.llama_bench, args.model, args.p, args.n, args.t)
                                  if args.llama_bench else run_llama(args.model, args.p, args.n, args.t))
                bw.append(float(subprocess.run([membw, str(args.t), "4"], capture_output=True, text=True).stdout))
    per_token = ours[0]["bytes_per_token"]
    size = os.path.getsize(args.model)
    band = statistics.median(bw)
    print(cpu_line())
    kernels = "; ".join(f"{f}: " + ", ".join(f"{c} {k}" for c, k in sorted(v.items())) for f, v in ours[0]["kernels"].items())
    print(f"file: {args.model} ({size / 1e9:.2f} GB), threads {args.t}, {args.r} alternating runs each; "
          f"llama.cpp {theirs[0].get('version')}; our kernels {kernels}")
    print(f"read bandwidth (membw, {args.t} threads, median): {band:.1f} GB/s")
    print(f"{'':22s}{'ours':>22s}{'llama.cpp':>22s}{'ratio':>8s}")
    for key, label, unit in [("pp_tps", f"prefill pp{args.p}", "tok/s"), ("tg_tps", f"decode tg{args.n}", "tok/s"),
                             ("peak_rss_bytes", "peak RSS", "GB"), ("load_s", "load to first token", "s")]:
        a = [o[key] for o in ours if key in o]
        b = [o[key] for o in theirs if key in o]
        if not a or not b:
            continue
        scale = 1e-9 if unit == "GB" else 1
        ma, mb = statistics.median(a) * scale, statistics.median(b) * scale
        fa = f"{ma:.2f} ({min(a) * scale:.2f}–{max(a) * scale:.2f})"
        fb = f"{mb:.2f} ({min(b) * scale:.2f}–{max(b) * scale:.2f})"
        print(f"{label + ' (' + unit + ')':22s}{fa:>22s}{fb:>22s}{ma / mb:8.2f}")
    tg = [o["tg_tps"] for o in ours if "tg_tps" in o]
    tgl = [o["tg_tps"] for o in theirs if "tg_tps" in o]
    if tg and tgl:
        print(f"decode reads {per_token / 1e9:.2f} GB of weights per token: ours {statistics.median(tg) * per_token / 1e9:.1f} GB/s "
              f"({statistics.median(tg) * per_token / 1e9 / band * 100:.0f} % of the measured bandwidth), llama.cpp "
              f"{statistics.median(tgl) * per_token / 1e9:.1f} GB/s ({statistics.median(tgl) * per_token / 1e9 / band * 100:.0f} %)")


if __name__ == "__main__":
    main()
