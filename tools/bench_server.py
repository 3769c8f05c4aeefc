#!/usr/bin/env python3
"""Concurrent-stream benchmark of an OpenAI-compatible server: phi4-server, llama.cpp's
llama-server, or both side by side on the same model file, alternating, several rounds.

For each number of concurrent streams S it starts S streamed /v1/completions requests at once
(distinct prompts, greedy, max_tokens N, end-of-text disabled through logit_bias where the server
accepts it) and reports: aggregate decode tokens/s (tokens generated while all S streams decode,
over that window), time to first token (median over streams), inter-token latency p50 / p99.

    # phi4-server alone (it is started and stopped by the script):
    python3 tools/bench_server.py --model phi4-q4_0.gguf --streams 1,2,4,8 -n 32 -t 2
    # side by side with llama-server (built from the llama-cpp-python sdist, see BENCHMARKS.md):
    python3 tools/bench_server.py --model phi4-q4_0.gguf --llama-server .build-llama/bin/llama-server ...
    # the "long prompt arrives" scenario: 3 streams decode, then a prompt of 2,000 tokens:
    python3 tools/bench_server.py --model phi4-q4_0.gguf --interference 3 --long-prompt 2000

Only the standard library is used; each token is one server-sent event (both servers send one per
token when the text is final).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORDS = ["import", "def", "class", "for", "while", "with", "from", "return", "yield", "async", "try", "raise"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, port):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200 and json.load(r).get("status") in ("ok", "busy", "no slot available"):
                    return proc
        except Exception:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {' '.join(cmd)}")
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def stream(port, prompt, n, out, index, bias):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True}
    if bias:
        body["logit_bias"] = bias
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    times = []
    with urllib.request.urlopen(req, timeout=3600) as r:
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                times.append(time.perf_counter())
    out[index] = (t0, times)


def run_round(port, streams, n, bias, long_prompt=0):
    out = [None] * streams
    threads = [threading.Thread(target=stream, args=(port, f"{WORDS[i % len(WORDS)]} x{i}:\n", n, out, i, bias))
               for i in range(streams)]
    for t in threads:
        t.start()
    extra = None
    if long_prompt:
        time.sleep(3.0)  # the streams are decoding
        extra = [None]
        # Not waited for: the streams' inter-token gaps while it is read are what is measured.
        lt = threading.Thread(target=stream, args=(port, "x " * long_prompt, 1, extra, 0, bias), daemon=True)
        lt.start()
    for t in threads:
        t.join()
    if extra:
        print(f"  (long prompt of {long_prompt} tokens sent 3 s after the streams started)")
    starts = [o[0] for o in out]
    firsts = [o[1][0] for o in out if o[1]]
    ends = [o[1][-1] for o in out if o[1]]
    window0, window1 = max(firsts), min(ends)
    tokens = sum(sum(1 for t in o[1] if window0 < t <= window1) for o in out)
    gaps = [b - a for o in out for a, b in zip(o[1], o[1][1:])]
    return {"aggregate_tps": tokens / (window1 - window0) if window1 > window0 else float("nan"),
            "ttft_s": statistics.median(f - s for f, s in zip(firsts, starts)),
            "itl_p50_s": statistics.median(gaps), "itl_p99_s": sorted(gaps)[max(0, int(len(gaps) * 0.99) - 1)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("-n", type=int, default=32, help="tokens per stream")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--rounds", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2560, help="positions per slot")
    ap.add_argument("--phi4-server", default=os.path.join(ROOT, "Server", ".build", "release", "phi4-server"))
    ap.add_argument("--llama-server", help="llama.cpp's llama-server binary, to compare side by side")
    ap.add_argument("--interference", type=int, default=0, help="streams decoding when --long-prompt arrives")
    ap.add_argument("--long-prompt", type=int, default=2000)
    ap.add_argument("--server-args", default="", help="extra phi4-server arguments, e.g. '--max-step-slowdown 0'")
    args = ap.parse_args()
    counts = [int(x) for x in args.streams.split(",")] if not args.interference else [args.interference]
    eot = "100257"  # Phi-4's <|endoftext|>; <|im_end|> is 100265
    bias = {eot: -100, "100265": -100}
    engines = {"phi4": lambda s, p: [args.phi4_server, "--model", args.model, "--port", str(p), "--parallel", str(s),
                                     "--ctx", str(args.ctx), "-t", str(args.threads), "--max-tokens", str(args.n + 8)]
                       + args.server_args.split()}
    if args.llama_server:
        engines["llama.cpp"] = lambda s, p: [args.llama_server, "-m", args.model, "--port", str(p), "-np", str(s),
                                             "-c", str(args.ctx * s), "-t", str(args.threads), "--no-webui"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"cpu: {cpu}; model: {args.model}; {args.n} tokens per stream, {args.threads} threads")
    for s in counts:
        results = {name: [] for name in engines}
        for _ in range(args.rounds):
            for name, cmd in engines.items():  # alternating, one server at a time
                port = free_port()
                proc = start(cmd(max(s, args.interference and s + 1 or s), port), port)
                try:
                    results[name].append(run_round(port, s, args.n, bias, args.long_prompt if args.interference else 0))
                finally:
                    proc.kill()  # SIGTERM would let the long prompt finish first
                    proc.wait(timeout=60)
        for name, rs in results.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            print(f"{name:9s} streams {s}: aggregate {med['aggregate_tps']:.2f} tok/s, TTFT {med['ttft_s']:.2f} s, "
                  f"ITL p50 {med['itl_p50_s'] * 1e3:.0f} ms, p99 {med['itl_p99_s'] * 1e3:.0f} ms "
                  "(rounds: " + ", ".join("%.2f" % r["aggregate_tps"] for r in rs) + ")")


if __name__ == "__main__":
    main()
