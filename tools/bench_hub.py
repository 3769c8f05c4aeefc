"""Download throughput: phi4-hub against huggingface_hub, one file from the local test Hub
(Server/Tests/hub/hub_server.py: TLS, a redirect to another host name), fresh caches, alternating.

    python3 tools/bench_hub.py [--size-mb 1024] [--rounds 3]

Needs huggingface_hub (the server test venv has it: .build-srvpy/bin/python tools/bench_hub.py)
and `make server`. phi4-hub's time includes verifying the sha256; the served file is random bytes."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "Server/Tests/hub"))
from hub_server import Hub  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tool = os.path.join(ROOT, "Server/.build/release/phi4-hub")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        blob = os.path.join(d, "model-Q4_K_M.gguf")
        with open(blob, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        hub = Hub({"bench/model-GGUF": {"files": {"model-Q4_K_M.gguf": blob}}}, d)
        size = os.path.getsize(blob)
        results = {"phi4-hub": [], "huggingface_hub": []}
        for r in range(args.rounds):
            for name in ("phi4-hub", "huggingface_hub"):
                cache = os.path.join(d, f"cache-{name}-{r}")
                env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=cache, SSL_CERT_FILE=hub.ca,
                           HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
                cmd = ([tool, "pull", "bench/model-GGUF:Q4_K_M"] if name == "phi4-hub" else
                       [sys.executable, "-c", "import huggingface_hub as h; h.hf_hub_download('bench/model-GGUF', 'model-Q4_K_M.gguf')"])
                t = time.time()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                dt = time.time() - t
                results[name].append(size / dt / 1e6)
                subprocess.run(["rm", "-rf", cache])
        hub.close()
    for name, v in results.items():
        v = sorted(v)
        print(f"{name:16s} median {v[len(v) // 2]:7.0f} MB/s  (runs: {', '.join(f'{x:.0f}' for x in v)})")
    print(f"ratio phi4-hub / huggingface_hub: {sorted(results['phi4-hub'])[args.rounds // 2] / sorted(results['huggingface_hub'])[args.rounds // 2]:.2f}")


if __name__ == "__main__":
    main()
