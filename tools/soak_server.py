#!/usr/bin/env python3
"""Mixed-load soak and robustness run against phi4-server (standard library only).

Starts phi4-server on a model and, for --minutes, keeps --clients threads sending a mix of
requests: streamed chat completions, whole text completions with logprobs, clients that disconnect
mid-stream, seeded sampling, and malformed requests (valid bodies with bytes flipped, fields of the
wrong type, truncated JSON, oversized bodies, unknown models). Every --sample seconds it reads the
server's resident memory (VmRSS). At the end it checks:

- no valid request got anything but 200, no request got a 5xx or a dropped connection
  (malformed requests must get a 4xx, or a 200 when the mutation left them valid);
- the server still answers /health and a completion, and exits 0 on SIGTERM;
- resident memory after warm-up (the first sample past 10 % of the run) against the last and the
  largest sample.

    python3 tools/soak_server.py [--model models/phi4-demo-q8_0.gguf] [--minutes 20] [--clients 6]

Exit status 0 when every check passes. The figures it prints are the closing numbers of a soak.
"""
import argparse
import collections
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

PROMPTS = ["Tell me about the sea.", "Write a short poem about rain.", "List three prime numbers.",
           "What is a CPU cache?", "Explain recursion to a child.", "Name a colour.", "Count to ten."]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.failures = []

    def add(self, kind, status, ok, detail=""):
        with self.lock:
            self.counts[(kind, status)] += 1
            if not ok and len(self.failures) < 50:
                self.failures.append(f"{kind}: status {status} {detail}"[:300])


def request(port, path, body, timeout=300, read=True):
    """(status, body bytes); body is bytes. Raises on a dropped connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read() if read else b""
    finally:
        conn.close()


def valid_body(rng, max_tokens):
    if rng.random() < 0.5:
        body = {"messages": [{"role": "user", "content": rng.choice(PROMPTS)}], "max_tokens": rng.randint(1, max_tokens)}
        path = "/v1/chat/completions"
    else:
        body = {"prompt": rng.choice(PROMPTS), "max_tokens": rng.randint(1, max_tokens)}
        path = "/v1/completions"
    r = rng.random()
    if r < 0.3:
        body["temperature"] = 0
    elif r < 0.6:
        body["seed"] = rng.randint(0, 1 << 30)
        body["temperature"] = rng.choice([0.2, 0.7, 1.0])
    if rng.random() < 0.3:
        body["logprobs"] = True if path.endswith("chat/completions") else 3
        if path.endswith("chat/completions"):
            body["top_logprobs"] = 3
    if rng.random() < 0.2:
        body["stop"] = [rng.choice([".", "\n", " the"])]
    return path, body


def mutated(rng, max_tokens, max_body):
    """A malformed or odd request: (path, body bytes, kind)."""
    path, body = valid_body(rng, max_tokens)
    raw = json.dumps(body).encode()
    k = rng.randrange(6)
    if k == 0:  # flipped bytes
        b = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return path, bytes(b), "flipped"
    if k == 1:  # truncated
        return path, raw[:rng.randrange(len(raw))], "truncated"
    if k == 2:  # wrong types
        key = rng.choice(list(body))
        body[key] = rng.choice([None, "x", -1, 1e300, [], {}, True, "9" * 40])
        return path, json.dumps(body).encode(), "wrong-type"
    if k == 3:  # oversized
        return path, b'{"prompt": "' + b"a" * (max_body + 10) + b'"}', "oversized"
    if k == 4:  # unknown model
        body["model"] = "no-such-model-%d" % rng.randrange(1000)
        return path, json.dumps(body).encode(), "unknown-model"
    body[rng.choice(["max_tokens", "top_p", "temperature", "n", "top_k", "logit_bias", "stop"])] = \
        rng.choice([-5, 0, 2**63, "abc", [1, 2], {"a": 1}, 1e-30, None])
    return path, json.dumps(body).encode(), "odd-value"


def client(port, seed, stop_at, stats, max_tokens, max_body):
    rng = random.Random(seed)
    while time.time() < stop_at:
        r = rng.random()
        try:
            if r < 0.45:  # valid, whole
                path, body = valid_body(rng, max_tokens)
                status, data = request(port, path, json.dumps(body).encode())
                ok = status == 200 and "usage" in json.loads(data)
                stats.add("valid", status, ok, data[:200])
            elif r < 0.65:  # valid, streamed to the end
                path, body = valid_body(rng, max_tokens)
                body["stream"] = True
                status, data = request(port, path, json.dumps(body).encode())
                ok = status == 200 and data.rstrip().endswith(b"data: [DONE]")
                stats.add("stream", status, ok, data[-200:])
            elif r < 0.75:  # a client that goes away mid-stream
                path, body = valid_body(rng, max_tokens)
                body["stream"] = True
                body["max_tokens"] = max_tokens
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read(rng.randint(1, 300))
                conn.close()
                stats.add("disconnect", resp.status, resp.status == 200)
            else:  # malformed
                path, raw, kind = mutated(rng, max_tokens, max_body)
                status, data = request(port, path, raw)
                ok = 400 <= status < 500 or status == 200
                if status != 200:
                    try:
                        ok = ok and "error" in json.loads(data)
                    except ValueError:
                        ok = False
                stats.add("malformed-" + kind, status, ok, data[:200])
        except (OSError, http.client.HTTPException) as e:
            stats.add("connection", type(e).__name__, False, str(e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.path.join(ROOT, "Server", ".build", "release", "phi4-server"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"))
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--sample", type=float, default=10, help="seconds between memory samples")
    ap.add_argument("-t", "--threads", type=int, default=2)
    args = ap.parse_args()
    max_body = 65536
    port = free_port()
    proc = subprocess.Popen([args.server, "--model", args.model, "--strict-model-name", "--port", str(port), "--parallel", str(args.parallel),
                             "-t", str(args.threads), "--max-body", str(max_body), "--ctx", "1024",
                             "--max-queue", str(4 * args.clients)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            if request(port, "/health", None, timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("phi4-server did not start")
        time.sleep(0.2)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"cpu: {cpu}; model: {args.model}; {args.clients} clients, {args.parallel} slots, {args.minutes} min")
    stats = Stats()
    start = time.time()
    stop_at = start + args.minutes * 60
    threads = [threading.Thread(target=client, args=(port, 1000 + i, stop_at, stats, args.max_tokens, max_body))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    samples = []
    while time.time() < stop_at and proc.poll() is None:
        samples.append((time.time() - start, rss_kb(proc.pid)))
        time.sleep(min(args.sample, max(0.0, stop_at - time.time())))
    for t in threads:
        t.join()
    alive = proc.poll() is None
    if alive:
        samples.append((time.time() - start, rss_kb(proc.pid)))
    checks = []
    try:
        status, data = request(port, "/v1/completions", json.dumps({"prompt": "Hello", "max_tokens": 4}).encode())
        checks.append(("answers afterwards", status == 200))
    except OSError:
        checks.append(("answers afterwards", False))
    if alive:
        proc.send_signal(signal.SIGTERM)
        try:
            checks.append(("exit 0 on SIGTERM", proc.wait(timeout=120) == 0))
        except subprocess.TimeoutExpired:
            proc.kill()
            checks.append(("exit 0 on SIGTERM", False))
    else:
        checks.append(("server alive through the run", False))
    total = sum(stats.counts.values())
    print(f"requests: {total} in {time.time() - start:.0f} s")
    by_kind = collections.defaultdict(collections.Counter)
    for (kind, status), n in sorted(stats.counts.items(), key=str):
        by_kind[kind][status] += n
    for kind, c in sorted(by_kind.items()):
        print(f"  {kind:24s} " + ", ".join(f"{s}: {n}" for s, n in sorted(c.items(), key=str)))
    if samples:
        warm = next((s for s in samples if s[0] >= 0.1 * args.minutes * 60), samples[0])
        peak = max(s[1] for s in samples)
        marks = [samples[min(len(samples) - 1, int(len(samples) * q))] for q in (0.1, 0.25, 0.5, 0.75, 1.0)]
        print("VmRSS over the run: " + ", ".join(f"{t / 60:.0f} min {kb / 1024:.1f} MB" for t, kb in marks))
        print(f"VmRSS: after warm-up ({warm[0]:.0f} s) {warm[1] / 1024:.1f} MB, last {samples[-1][1] / 1024:.1f} MB, "
              f"largest {peak / 1024:.1f} MB, first {samples[0][1] / 1024:.1f} MB ({len(samples)} samples)")
    checks.append(("no unexpected response", not stats.failures))
    for f in stats.failures[:20]:
        print("  unexpected:", f)
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
