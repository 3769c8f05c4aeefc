"""Models by name from the Hugging Face Hub: phi4-hub / `phi4 pull` / `phi4 … -hf REF` against a
local Hub (hub/hub_server.py, TLS with a CA made for the test), with huggingface_hub as the
independent client sharing the cache."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "hub"))
from hub_server import Hub  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PHI4 = os.environ.get("PHI4_CLI", os.path.join(ROOT, ".build/release/phi4"))
HUB_TOOL = os.environ.get("PHI4_HUB", os.path.join(ROOT, "Server/.build/release/phi4-hub"))
FIX = os.path.join(ROOT, "Tests/Phi4Tests/Fixtures")
DEMO = os.path.join(ROOT, "models/phi4-demo-q8_0.gguf")
SPLIT = [os.path.join(FIX, f"quant/split/gqa8-q8_0-0000{i}-of-00003.gguf") for i in (1, 2, 3)]
GQA8 = os.path.join(FIX, "models/gqa8")

pytestmark = pytest.mark.skipif(not (os.path.exists(PHI4) and os.path.exists(HUB_TOOL)), reason="phi4 and phi4-hub not built")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    readme = folder / "README.md"
    readme.write_text("a test repository\n")
    repos = {
        "tester/phi-4-GGUF": {"files": {
            "README.md": str(readme),
            "phi-4-Q8_0.gguf": DEMO,
            "phi-4-IQ4_XS.gguf": os.path.join(FIX, "quant/lowbit/iq4_xs.gguf"),
            "phi-4-Q4_K_M.gguf": os.path.join(FIX, "quant/lowbit/q3_k_m.gguf"),
            **{f"phi-4-Q6_K/phi-4-Q6_K-0000{i}-of-00003.gguf": SPLIT[i - 1] for i in (1, 2, 3)},
        }},
        "tester/tagless": {"files": {"phi-4-q4.gguf": os.path.join(FIX, "quant/lowbit/q4_1.gguf"),
                                     "phi-4-fp16.gguf": os.path.join(FIX, "quant/lowbit/q5_0.gguf")}},
        "tester/gated-GGUF": {"files": {"gated-Q4_K_M.gguf": os.path.join(FIX, "quant/lowbit/q2_k.gguf")}, "token": "hf_test"},
        "tester/phi-4-mini": {"files": {name: os.path.join(GQA8, name) for name in os.listdir(GQA8)
                                        if os.path.isfile(os.path.join(GQA8, name))}},
    }
    h = Hub(repos, str(folder), renamed={"tester/renamed-GGUF": "tester/phi-4-GGUF"})
    yield h
    h.close()


def env_for(hub, cache, **extra):
    env = dict(os.environ)
    for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HOME", "HTTPS_PROXY", "https_proxy"):
        env.pop(k, None)
    env.update({"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(cache), "SSL_CERT_FILE": hub.ca, "PHI4_HUB": HUB_TOOL,
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN_PATH": str(cache) + "/no-token", "HF_HUB_DISABLE_XET": "1"})
    env.update(extra)
    return env


def run(args, env, check=True):
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def hf(code, env):
    """Runs huggingface_hub in a child (its settings are read at import), returns what it prints."""
    return run([sys.executable, "-c", "import huggingface_hub as h, json\n" + code], env).stdout.strip()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_pull_is_found_by_huggingface_hub(hub, tmp_path):
    env = env_for(hub, tmp_path)
    path = run([PHI4, "pull", "tester/phi-4-GGUF:q8_0"], env).stdout.strip().splitlines()[-1]
    assert os.path.realpath(path) == os.path.realpath(str(tmp_path / "models--tester--phi-4-GGUF/blobs" / sha256(DEMO)))
    found = hf("print(h.try_to_load_from_cache('tester/phi-4-GGUF', 'phi-4-Q8_0.gguf', cache_dir=%r))" % str(tmp_path), env)
    assert os.path.samefile(found, path)
    scan = hf("""info = h.scan_cache_dir(%r)
print(json.dumps([[r.repo_id, sorted(f.file_name for rev in r.revisions for f in rev.files), r.size_on_disk] for r in info.repos]))
print(len(info.warnings))""" % str(tmp_path), env).splitlines()
    assert json.loads(scan[0]) == [["tester/phi-4-GGUF", ["phi-4-Q8_0.gguf"], os.path.getsize(DEMO)]]
    assert scan[1] == "0"
    listing = run([PHI4, "list"], env).stdout
    assert "tester/phi-4-GGUF" in listing and "phi-4-Q8_0.gguf" in listing


def test_huggingface_hub_download_runs_offline(hub, tmp_path):
    env = env_for(hub, tmp_path)
    hf("h.hf_hub_download('tester/phi-4-GGUF', 'phi-4-Q8_0.gguf', cache_dir=%r)" % str(tmp_path), env)
    hub.reset()
    out = run([PHI4, "generate", "-hf", "tester/phi-4-GGUF:Q8_0", "--prompt", "def add(a, b):", "--max-tokens", "4",
               "--greedy"], env_for(hub, tmp_path, HF_HUB_OFFLINE="1")).stdout
    assert out.strip()
    assert hub.requests() == []  # nothing asked of the Hub


def test_offline_without_cache_says_so(hub, tmp_path):
    p = run([PHI4, "info", "tester/phi-4-GGUF:IQ4_XS"], env_for(hub, tmp_path, HF_HUB_OFFLINE="1"), check=False)
    assert p.returncode != 0 and "HF_HUB_OFFLINE" in p.stderr


def test_quant_tags_and_split_files(hub, tmp_path):
    env = env_for(hub, tmp_path)
    path = run([PHI4, "pull", "tester/phi-4-GGUF:iq4_xs"], env).stdout.strip().splitlines()[-1]
    assert path.endswith("phi-4-IQ4_XS.gguf")
    path = run([PHI4, "pull", "tester/phi-4-GGUF"], env).stdout.strip().splitlines()[-1]  # default Q4_K_M
    assert path.endswith("phi-4-Q4_K_M.gguf")
    info = run([PHI4, "info", "tester/phi-4-GGUF:Q6_K"], env).stdout  # downloads all three shards
    assert "split: 3 shards" in info
    snap = tmp_path / "models--tester--phi-4-GGUF/snapshots" / hub.commit / "phi-4-Q6_K"
    assert sorted(os.listdir(snap)) == [f"phi-4-Q6_K-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        assert sha256(snap / f"phi-4-Q6_K-0000{i}-of-00003.gguf") == sha256(SPLIT[i - 1])


def test_tagless_repository_lists_files(hub, tmp_path):
    env = env_for(hub, tmp_path)
    p = run([PHI4, "pull", "tester/tagless"], env, check=False)
    assert p.returncode != 0
    assert "--hf-file" in p.stderr and "phi-4-q4.gguf" in p.stderr and "phi-4-fp16.gguf" in p.stderr and "GB" in p.stderr
    path = run([PHI4, "pull", "tester/tagless", "--hf-file", "phi-4-q4.gguf"], env).stdout.strip().splitlines()[-1]
    assert path.endswith("phi-4-q4.gguf")


def test_transformers_repository(hub, tmp_path):
    env = env_for(hub, tmp_path)
    path = run([PHI4, "pull", "tester/phi-4-mini"], env).stdout.strip().splitlines()[-1]
    assert sorted(os.listdir(path)) == sorted(n for n in os.listdir(GQA8) if os.path.isfile(os.path.join(GQA8, n)))
    assert "layers" in run([PHI4, "info", "tester/phi-4-mini"], env_for(hub, tmp_path, HF_HUB_OFFLINE="1")).stdout
    p = run([PHI4, "generate", "--model", "tester/phi-4-mini", "--prompt", "Hello", "--max-tokens", "2", "--greedy"],
            env_for(hub, tmp_path, HF_HUB_OFFLINE="1"))
    assert "a transformers checkpoint, quantized at load to f32" in p.stderr  # the best type that fits: this tiny model in f32


def test_resume_after_a_broken_transfer(hub, tmp_path):
    env = env_for(hub, tmp_path)
    sha = sha256(DEMO)
    hub.fault(sha, "truncate", 5_000_000)
    p = run([HUB_TOOL, "pull", "tester/phi-4-GGUF:Q8_0"], env, check=False)
    assert p.returncode != 0
    partial = tmp_path / "models--tester--phi-4-GGUF/blobs" / (sha + ".incomplete")
    assert partial.exists() and 0 < partial.stat().st_size < os.path.getsize(DEMO)
    hub.reset()
    run([HUB_TOOL, "pull", "tester/phi-4-GGUF:Q8_0"], env)
    assert sha256(tmp_path / "models--tester--phi-4-GGUF/blobs" / sha) == sha
    assert not partial.exists()
    assert any(r["range"] and r["range"].startswith("bytes=") for r in hub.requests())


def test_corrupted_payload_is_rejected(hub, tmp_path):
    env = env_for(hub, tmp_path)
    sha = sha256(os.path.join(FIX, "quant/lowbit/iq4_xs.gguf"))
    hub.fault(sha, "corrupt")
    p = run([HUB_TOOL, "pull", "tester/phi-4-GGUF:IQ4_XS"], env, check=False)
    assert p.returncode != 0 and "sha256 mismatch" in p.stderr
    repo = tmp_path / "models--tester--phi-4-GGUF"
    assert os.listdir(repo / "blobs") == []
    assert not (repo / "snapshots").exists() or not any((repo / "snapshots").rglob("*.gguf"))


def test_token_needed_and_kept_from_other_hosts(hub, tmp_path):
    p = run([HUB_TOOL, "pull", "tester/gated-GGUF"], env_for(hub, tmp_path), check=False)
    assert p.returncode != 0 and "401" in p.stderr and "HF_TOKEN" in p.stderr
    hub.reset()
    run([HUB_TOOL, "pull", "tester/gated-GGUF"], env_for(hub, tmp_path, HF_TOKEN="hf_test"))
    reqs = hub.requests()
    hub_side = [r for r in reqs if r["host"].startswith("localhost")]
    cdn_side = [r for r in reqs if r["host"].startswith("127.0.0.1")]
    assert hub_side and all(r["authorization"] == "Bearer hf_test" for r in hub_side)
    assert cdn_side and all(r["authorization"] is None for r in cdn_side)


def test_token_file_is_read(hub, tmp_path):
    token = tmp_path / "token"
    token.write_text("hf_test\n")
    run([HUB_TOOL, "pull", "tester/gated-GGUF"], env_for(hub, tmp_path, HF_TOKEN_PATH=str(token)))


def test_two_downloads_at_once_end_with_one_blob(hub, tmp_path):
    env = env_for(hub, tmp_path)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run([HUB_TOOL, "pull", "tester/phi-4-GGUF:Q8_0"], env, check=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    blobs = os.listdir(tmp_path / "models--tester--phi-4-GGUF/blobs")
    assert blobs == [sha256(DEMO)]


def test_disk_space_is_checked_first(hub, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        hub.reset()
        p = run([HUB_TOOL, "pull", "tester/phi-4-GGUF:Q8_0"], env_for(hub, small), check=False)
        assert p.returncode != 0 and "not enough disk space" in p.stderr and "GB" in p.stderr
        assert not any(r["path"].startswith("/cdn/") for r in hub.requests())  # refused before the transfer
    finally:
        subprocess.run(["umount", str(small)])


def test_rm_removes_the_repository(hub, tmp_path):
    env = env_for(hub, tmp_path)
    run([PHI4, "pull", "tester/phi-4-GGUF:IQ4_XS"], env)
    out = run([PHI4, "rm", "tester/phi-4-GGUF"], env).stdout
    assert "removed tester/phi-4-GGUF" in out
    assert not (tmp_path / "models--tester--phi-4-GGUF").exists()


def test_server_downloads_and_serves_by_name(hub, tmp_path):
    import socket
    import time
    import urllib.request

    import openai

    server = os.environ.get("PHI4_SERVER", os.path.join(ROOT, "Server/.build/release/phi4-server"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([server, "-hf", "tester/phi-4-GGUF:Q8_0", "--port", str(port), "--ctx", "256", "-t", "2"],
                            env=env_for(hub, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                if json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health"))["status"] == "ok":
                    break
            except Exception:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        assert [m.id for m in client.models.list().data] == ["phi-4-GGUF:Q8_0"]
        r = client.completions.create(model="phi-4-GGUF:Q8_0", prompt="def add(a, b):", max_tokens=4, temperature=0)
        assert r.choices[0].text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "models--tester--phi-4-GGUF/blobs" / sha256(DEMO)).exists()


PY_BINDING = os.path.join(ROOT, ".build-py")


@pytest.mark.skipif(not os.path.exists(os.path.join(PY_BINDING, "phi4")), reason="the Python binding is not installed in .build-py")
def test_python_from_pretrained_and_names(hub, tmp_path):
    env = env_for(hub, tmp_path, PYTHONPATH=PY_BINDING)
    code = """
import phi4, sys
m = phi4.Model.from_pretrained('tester/phi-4-GGUF', filename='*Q6_K-00001-of-00003.gguf')
print(m.vocab_size)
m2 = phi4.Model('tester/phi-4-GGUF:Q6_K')  # the same file, by name, from the cache
print(m2.vocab_size)
llm = phi4.Llama.from_pretrained('tester/phi-4-GGUF', '*IQ4_XS.gguf', n_ctx=64, verbose=False)  # llama-cpp-python's spelling
assert llm.n_vocab() > 0 and llm.model_path.endswith('IQ4_XS.gguf'), llm.model_path
try:
    phi4.Model('tester/phi-4-GGUF:IQ2_M')
except phi4.Phi4Error as e:
    print('missing:', e)
"""
    out = run([sys.executable, "-c", code], env).stdout.splitlines()
    assert out[0] == out[1] and int(out[0]) > 0
    assert out[2].startswith("missing:") and "phi4 pull" in out[2]
    snap = tmp_path / "models--tester--phi-4-GGUF/snapshots" / hub.commit / "phi-4-Q6_K"
    assert len(os.listdir(snap)) == 3


def test_https_proxy_is_used(hub, tmp_path):
    from hub_server import ConnectProxy

    proxy = ConnectProxy()
    try:
        env = env_for(hub, tmp_path, HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}")
        run([HUB_TOOL, "pull", "tester/phi-4-GGUF:IQ4_XS"], env)
    finally:
        proxy.close()
    assert f"localhost:{hub.port}" in proxy.targets and f"127.0.0.1:{hub.port}" in proxy.targets


def test_relative_redirect_then_the_file(hub, tmp_path):
    """A renamed repository: its resolve URL answers 307 to the new name on the same host (no file
    metadata); the metadata is read from the response that leads off the Hub's host. huggingface_hub
    follows the same redirect."""
    env = env_for(hub, tmp_path)
    path = run([HUB_TOOL, "pull", "tester/renamed-GGUF:IQ4_XS"], env).stdout.strip().splitlines()[-1]
    assert sha256(path) == sha256(os.path.join(FIX, "quant/lowbit/iq4_xs.gguf"))
    found = hf("print(h.hf_hub_download('tester/renamed-GGUF', 'phi-4-IQ4_XS.gguf', cache_dir=%r))" % str(tmp_path), env)
    assert os.path.samefile(found, path)
