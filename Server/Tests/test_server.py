"""phi4-server through the official `openai` client and raw HTTP: completions whole and streamed,
logprobs, stop strings, seeds, every documented error, concurrency (8 clients get exactly what
each gets alone), a client that disconnects, SIGTERM. Run by scripts/test-server.sh, which builds
the server and passes its path in PHI4_SERVER."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.environ.get("PHI4_SERVER", os.path.join(ROOT, "Server", ".build", "release", "phi4-server"))
MODEL = os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf")
ALIAS = "phi4-demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, model=None):
        self.port = free_port()
        self.proc = subprocess.Popen([SERVER, "--model", model or MODEL, "--alias", ALIAS, "--port", str(self.port), "-t", "2", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if json.load(urllib.request.urlopen(self.url + "/health", timeout=2))["status"] in ("ok", "busy"):
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            assert self.proc.poll() is None, self.proc.stdout.read()
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def client(self, **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, **kw)

    def raw(self, path, body=None, headers=None, method=None):
        """(status, headers, parsed JSON or text) of one request; body: bytes or a JSON-able value."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            r = urllib.request.urlopen(req, timeout=60)
            status, hdrs, text = r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, e.headers, e.read().decode()
        try:
            return status, hdrs, json.loads(text)
        except json.JSONDecodeError:
            return status, hdrs, text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    s = Server("--parallel", "4", "--max-tokens", "64", "--max-body", "65536", "--ctx", "512")
    yield s
    s.stop()


CHAT = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "A function that adds two numbers."}]


def test_models_and_health(server):
    models = server.client().models.list()
    assert [m.id for m in models.data] == [ALIAS]
    status, _, body = server.raw("/health")
    assert status == 200 and body["status"] in ("ok", "busy")
    status, _, text = server.raw("/metrics")
    assert status == 200 and "phi4_requests_total" in text and "phi4_kv_cache_usage_ratio" in text
    status, _, doc = server.raw("/openapi.json")
    assert status == 200 and "/v1/chat/completions" in doc["paths"]


def test_chat_whole_and_streamed_agree(server):
    c = server.client()
    r = c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=24, temperature=0)
    text = r.choices[0].message.content
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    chunks = list(c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    # The second request found the conversation cached in a slot.
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0


def test_text_completions_and_logprobs(server):
    c = server.client()
    r = c.completions.create(model=ALIAS, prompt="def add(a, b):", max_tokens=10, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == r.usage.completion_tokens == len(lp.token_logprobs) == len(lp.top_logprobs)
    assert all(x <= 0 for x in lp.token_logprobs) and all(len(t) <= 2 for t in lp.top_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(model=ALIAS, prompt="def add(a, b):", max_tokens=10,
                                                                        temperature=0, stream=True))
    assert streamed == r.choices[0].text
    chat = c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3 and e.top_logprobs[0].logprob >= e.logprob - 1e-6
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token


def test_stop_strings_and_seeds(server):
    c = server.client()
    full = c.completions.create(model=ALIAS, prompt="import os\n", max_tokens=40, temperature=0).choices[0].text
    assert len(full) > 12
    stop = full[8:11]
    cut = c.completions.create(model=ALIAS, prompt="import os\n", max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)] and cut.choices[0].finish_reason == "stop"
    def sample(seed):
        return c.completions.create(model=ALIAS, prompt="class ", max_tokens=24, temperature=1.0, seed=seed).choices[0].text
    assert sample(5) == sample(5)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1


def test_eight_concurrent_clients_get_what_each_gets_alone(server):
    # Quantized weights: every token is computed alike whatever else is in the pass, however the
    # prompt is chunked and whatever a slot had cached, so the texts are identical.
    prompts = ["import sys\n", "def main():\n", "class Parser:\n", "from os import path\n",
               "# Copyright\n", "while True:\n", "for i in range(10):\n", "try:\n"]
    c = server.client()
    alone = [c.completions.create(model=ALIAS, prompt=p, max_tokens=20, temperature=0).choices[0].text for p in prompts]
    together = [None] * len(prompts)
    def run(i):
        together[i] = server.client().completions.create(model=ALIAS, prompt=prompts[i], max_tokens=20,
                                                          temperature=0).choices[0].text
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_errors_have_openai_shape_and_status(server):
    c = server.client()
    assert c.chat.completions.create(model="gpt-4", messages=CHAT, max_tokens=4).model == "gpt-4"  # any name (see --strict-model-name)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=4, n=2)
    assert e.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=4, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array", "uniqueItems": True}}})
    assert e.value.body["param"] == "response_format" and "uniqueItems" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=ALIAS, prompt="x " * 600, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded" and "512" in e.value.body["message"]
    status, _, body = server.raw("/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, _, body = server.raw("/v1/chat/completions", {"model": ALIAS, "messages": CHAT, "temperature": "hot"})
    assert status == 400 and body["error"]["param"] == "temperature"
    status, _, body = server.raw("/v1/chat/completions", {"model": ALIAS, "messages": []})
    assert status == 400 and body["error"]["param"] == "messages"
    status, _, body = server.raw("/v1/chat/completions", {"model": ALIAS, "messages": [{"role": "wizard", "content": "hi"}]})
    assert status == 400
    status, _, body = server.raw("/v1/completions", {"model": ALIAS, "prompt": "a" * 70000})
    assert status == 413 and body["error"]["code"] == "request_too_large"
    status, _, body = server.raw("/v1/completions", {"model": ALIAS, "prompt": "x", "max_tokens": 2, "unknown_field": [1, 2]})
    assert status == 200  # unknown fields are ignored
    status, _, _ = server.raw("/v1/nothing-here")
    assert status == 404


def test_api_key_queue_full_and_disconnect():
    s = Server("--parallel", "1", "--max-queue", "1", "--api-key", "sekret", "--max-tokens", "400", "--ctx", "512")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").models.list()
        assert s.client(api_key="sekret").models.list().data[0].id == ALIAS
        c = s.client(api_key="sekret")
        # One request generating, one waiting: a third is refused with 429 and Retry-After.
        streams = [c.completions.create(model=ALIAS, prompt="import re\n", max_tokens=400, temperature=0, stream=True)
                   for _ in range(2)]
        first = next(iter(streams[0]))  # the first is running
        assert first.choices[0].text is not None
        status, headers, body = s.raw("/v1/completions", {"model": ALIAS, "prompt": "x", "max_tokens": 2},
                                      headers={"Authorization": "Bearer sekret"})
        assert status == 429 and headers["Retry-After"] and body["error"]["type"] == "rate_limit_error"
        # Both clients go away mid-stream: their slots free up within a step or two.
        for st in streams:
            st.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            _, _, metrics = s.raw("/metrics")
            if "phi4_active_requests 0.0" in metrics and "phi4_queue_depth 0.0" in metrics:
                break
            time.sleep(0.1)
        assert "phi4_active_requests 0.0" in metrics and "phi4_queue_depth 0.0" in metrics
        r = c.completions.create(model=ALIAS, prompt="x", max_tokens=2)
        assert r.usage.completion_tokens <= 2
    finally:
        # SIGTERM: in-flight work ends, the process exits 0.
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) == 0


def test_response_format_json_schema_and_json_object(server):
    """Constrained answers parse and validate (the jsonschema package is the oracle), whole and
    streamed, at temperature 1 on the demo model."""
    import jsonschema
    c = server.client()
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 130},
                                               "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
              "required": ["name", "age"], "additionalProperties": False}
    for seed in range(3):
        r = c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=120, temperature=1, seed=seed,
                                      response_format={"type": "json_schema",
                                                       "json_schema": {"name": "person", "schema": schema, "strict": True}})
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)
    stream = c.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=80, temperature=1, seed=7,
                                       response_format={"type": "json_object"}, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert isinstance(json.loads(text), dict)


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                    "unit": {"enum": ["C", "F"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}},
         {"type": "function", "function": {
             "name": "add", "strict": True,
             "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                            "required": ["a", "b"], "additionalProperties": False}}}]


@pytest.fixture(scope="module")
def tool_server():
    # The budget is counted in bytes (every byte is a token at worst), so a call needs some room.
    s = Server("--parallel", "2", "--max-tokens", "256", "--ctx", "1024")
    yield s
    s.stop()


def test_tool_calls(tool_server):
    """tools through the openai client: `required` and a named function give tool_calls whose
    arguments validate against their schema (jsonschema is the oracle), whole and streamed; a tool
    result goes back in a `tool` message; `auto` answers with calls or text; `none` with text."""
    import jsonschema
    c = tool_server.client()
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    msgs = [{"role": "user", "content": "What is the weather in Oslo?"}]
    for seed, choice in [(1, "required"), (2, "required"), (3, {"type": "function", "function": {"name": "add"}})]:
        r = c.chat.completions.create(model=ALIAS, messages=msgs, tools=TOOLS, tool_choice=choice, max_tokens=150,
                                      temperature=1, seed=seed)
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls", ch
        assert ch.message.content is None and ch.message.tool_calls
        for call in ch.message.tool_calls:
            jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
            assert call.id.startswith("call_") and call.type == "function"
            if isinstance(choice, dict):
                assert call.function.name == "add"
    # Streamed: the calls arrive whole in one delta.
    stream = c.chat.completions.create(model=ALIAS, messages=msgs, tools=TOOLS, tool_choice="required", max_tokens=150,
                                       temperature=1, seed=4, stream=True)
    calls, finish = [], None
    for ch in stream:
        if ch.choices:
            calls += ch.choices[0].delta.tool_calls or []
            finish = ch.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    # The conversation goes on with the result; auto answers in text or calls.
    first = r.choices[0].message
    follow = msgs + [{"role": "assistant", "content": None,
                      "tool_calls": [t.model_dump() for t in first.tool_calls]},
                     {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "{\"sum\": 3}"}]
    for seed in range(3):
        r = c.chat.completions.create(model=ALIAS, messages=follow, tools=TOOLS, max_tokens=60, temperature=1, seed=seed)
        ch = r.choices[0]
        if ch.finish_reason == "tool_calls":
            for call in ch.message.tool_calls:
                jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
        else:
            assert isinstance(ch.message.content, str) and not ch.message.content.startswith("<tool_call>")
    r = c.chat.completions.create(model=ALIAS, messages=msgs, tools=TOOLS, tool_choice="none", max_tokens=20)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")
    # Refusals name the field.
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=ALIAS, messages=msgs, tools=TOOLS,
                                  tool_choice={"type": "function", "function": {"name": "missing"}})
    assert "missing" in str(e.value)
