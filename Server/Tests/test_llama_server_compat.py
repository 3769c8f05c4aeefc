"""phi4-server as a drop-in for llama-server: any model name, CORS, /tokenize, /detokenize, /props,
/v1/embeddings (the official openai client, against transformers' hidden states), llama-server's
request fields, and -c divided among the slots."""
import base64
import json
import math
import os
import struct

import pytest

from test_server import ALIAS, ROOT, Server

FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models")


@pytest.fixture(scope="module")
def server():
    s = Server("--parallel", "2", "-c", "1024", "--max-tokens", "64", "--cors-origin", "http://app.example",
               "--embeddings", "-ngl", "99")
    yield s
    s.stop()


def test_any_model_name_is_served_and_echoed(server):
    c = server.client()
    r = c.completions.create(model="gpt-3.5-turbo", prompt="def", max_tokens=3, temperature=0)
    assert r.model == "gpt-3.5-turbo" and len(r.choices[0].text) > 0
    assert [m.id for m in c.models.list().data] == [ALIAS]
    status, _, body = server.raw("/v1/models/some-other-name")
    assert status == 200 and body["id"] == ALIAS


def test_strict_model_name():
    s = Server("--strict-model-name", "--ctx", "256")
    try:
        status, _, body = s.raw("/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "x", "max_tokens": 1})
        assert status == 404 and body["error"]["code"] == "model_not_found"
        status, _, _ = s.raw("/v1/completions", {"model": ALIAS, "prompt": "x", "max_tokens": 1})
        assert status == 200
        # Without --cors-origin: no CORS headers, and a preflight is not answered as one.
        status, headers, _ = s.raw("/v1/completions", {"prompt": "x", "max_tokens": 1}, headers={"Origin": "http://a.example"})
        assert status == 200 and headers.get("Access-Control-Allow-Origin") is None
        status, headers, _ = s.raw("/v1/completions", None, method="OPTIONS",
                                   headers={"Origin": "http://a.example", "Access-Control-Request-Method": "POST"})
        assert headers.get("Access-Control-Allow-Origin") is None
    finally:
        s.stop()


def test_cors_preflight_and_request(server):
    pre = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = server.raw("/v1/chat/completions", None, method="OPTIONS", headers=pre)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert "POST" in headers["Access-Control-Allow-Methods"] and "authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = server.raw("/v1/chat/completions", None, method="OPTIONS",
                                    headers=dict(pre, Origin="http://evil.example"))
    assert status == 403 and headers.get("Access-Control-Allow-Origin") is None
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    status, headers, _ = server.raw("/v1/chat/completions", body, headers={"Origin": "http://app.example"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://app.example" and "Origin" in headers["Vary"]
    status, headers, _ = server.raw("/v1/chat/completions", body, headers={"Origin": "http://evil.example"})
    assert status == 200 and headers.get("Access-Control-Allow-Origin") is None


def test_cors_any_origin():
    s = Server("--cors-origin", "*", "--ctx", "256")
    try:
        status, headers, _ = s.raw("/v1/models", None, method="OPTIONS",
                                   headers={"Origin": "http://x.example", "Access-Control-Request-Method": "GET"})
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    finally:
        s.stop()


def test_tokenize_detokenize_props(server):
    status, _, body = server.raw("/tokenize", {"content": "Hello, world!<|im_end|>"})
    assert status == 200 and body["tokens"] == [9906, 11, 1917, 0, 100265]  # tiktoken's ids (parse_special default true)
    status, _, body = server.raw("/tokenize", {"content": "Hello", "with_pieces": True, "parse_special": False})
    assert body["tokens"] == [{"id": 9906, "piece": "Hello"}]
    status, _, body = server.raw("/tokenize", {"content": "é", "with_pieces": True})
    assert status == 200 and all(isinstance(t["piece"], (str, list)) for t in body["tokens"])
    status, _, body = server.raw("/detokenize", {"tokens": [9906, 11, 1917, 0]})
    assert status == 200 and body["content"] == "Hello, world!"
    status, _, body = server.raw("/detokenize", {"tokens": [10 ** 7]})
    assert status == 400 and body["error"]["param"] == "tokens"
    status, _, props = server.raw("/props")
    assert status == 200 and props["total_slots"] == 2
    assert props["default_generation_settings"]["n_ctx"] == 512  # -c 1024 divided among 2 slots, as llama-server
    assert "<|im_start|>" in props["chat_template"] and props["model_alias"] == ALIAS


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_with_the_openai_client():
    # The HF fixture in f32: the mean of the final norm's outputs against transformers' (cosine ≥ 1 − 1e-4),
    # unit length as llama-server's OpenAI endpoint returns them. The client asks for base64 by default.
    ref = json.load(open(os.path.join(FIX, "gqa8", "reference", "embeddings.json")))
    s = Server("--ctx", "256", model=os.path.join(FIX, "gqa8"))
    try:
        c = s.client()
        r = c.embeddings.create(model="text-embedding-3-small", input=["Hello, world!", "def fib(n):"])
        assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 64
        assert r.usage.prompt_tokens == r.usage.total_tokens > 0 and r.model == "text-embedding-3-small"
        assert cosine(r.data[0].embedding, ref["mean"][0]) >= 1 - 1e-4
        assert abs(sum(x * x for x in r.data[0].embedding) - 1) < 1e-4
        f = c.embeddings.create(model=ALIAS, input=ref["inputs"][1], encoding_format="float")  # token ids
        assert cosine(f.data[0].embedding, ref["mean"][1]) >= 1 - 1e-4
        status, _, raw = s.raw("/v1/embeddings", {"input": "Hello, world!", "encoding_format": "base64"})
        values = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
        assert cosine(values, ref["mean"][0]) >= 1 - 1e-4
        for bad in ({"input": ""}, {"input": []}, {"input": [[]]}, {"input": 3}, {"input": "x", "encoding_format": "hex"}):
            status, _, body = s.raw("/v1/embeddings", bad)
            assert status == 400 and body["error"]["param"] in ("input", "encoding_format"), bad
    finally:
        s.stop()


def test_llama_server_request_fields(server):
    c = server.client()
    a = c.completions.create(model=ALIAS, prompt="import", max_tokens=5, temperature=0)
    status, _, b = server.raw("/v1/completions", {"prompt": "import", "n_predict": 5, "temperature": 0, "cache_prompt": True})
    assert status == 200 and b["choices"][0]["text"] == a.choices[0].text and b["usage"]["completion_tokens"] == 5
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}
    status, _, b = server.raw("/v1/completions", {"prompt": "x = ", "json_schema": schema, "max_tokens": 40, "temperature": 0})
    assert status == 200 and b["choices"][0]["text"].startswith("{")
    if b["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(b["choices"][0]["text"])["n"], int)
    status, _, b = server.raw("/v1/completions", {"prompt": "x = ", "grammar": 'root ::= "yes" | "no"', "max_tokens": 4})
    assert status == 200 and b["choices"][0]["text"] in ("yes", "no")
    status, _, b = server.raw("/v1/completions", {"prompt": "x", "max_tokens": 4, "typical_p": 0.5, "mirostat": 2,
                                                  "mirostat_tau": 3, "repeat_last_n": 16, "seed": 1})
    assert status == 200
    for field, value in (("dry_multiplier", 0.8), ("xtc_probability", 0.5), ("ignore_eos", True), ("n_probs", 3),
                         ("samplers", ["top_k"]), ("dynatemp_range", 0.5)):
        status, _, b = server.raw("/v1/completions", {"prompt": "x", "max_tokens": 2, field: value})
        assert status == 400 and b["error"]["param"] == field, field
    status, _, b = server.raw("/v1/completions", {"prompt": "x", "max_tokens": 2, "dry_multiplier": 0, "ignore_eos": False})
    assert status == 200  # neutral values change nothing and pass
