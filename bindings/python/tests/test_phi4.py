"""Tests of the Python binding on the repository's fixture models (transformers' reference ids)."""
import ctypes
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import phi4

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures")
MODEL = os.path.join(FIX, "models", "gqa8")


def reference(k=1):
    return json.load(open(os.path.join(MODEL, "reference", "prompts.json")))["prompts"][k]


@pytest.fixture(scope="module")
def model():
    return phi4.Model(MODEL)


def test_version():
    assert phi4.version().count(".") == 2


def test_greedy_ids_match_transformers(model):
    for k in range(4):
        ref = reference(k)
        ctx = model.context()
        ctx.eval(ref["ids"])
        out = []
        for _ in range(32):
            logits = ctx.logits()
            best = max(range(model.vocab_size), key=lambda i: logits[i])
            out.append(best)
            ctx.eval([best])
        assert out == ref["greedy32"]


def test_generate_greedy_text_equals_reference(model):
    ref = reference(1)
    eog = set(model.eog_tokens)
    cut = next((i for i, t in enumerate(ref["greedy32"]) if t in eog), 32)
    text = model.generate(ref["ids"], max_tokens=32, temperature=0)
    assert text == model.detokenize(ref["greedy32"][:cut])


def test_stream_pieces_join_to_text(model):
    ref = reference(2)
    full = model.generate(ref["ids"], max_tokens=40, temperature=0.9, seed=5)
    pieces = list(model.generate(ref["ids"], max_tokens=40, temperature=0.9, seed=5, stream=True))
    assert len(pieces) > 1
    assert "".join(pieces) == full


def test_tokenizer_alone_matches_tiktoken():
    tok = phi4.Tokenizer(os.path.join(FIX, "tokenizer", "phi4"))
    assert tok.tokenize("Hello, world!") == [9906, 11, 1917, 0]
    assert tok.tokenize("<|im_end|>", special=True) == [100265]
    assert tok.detokenize([9906, 11, 1917, 0]) == "Hello, world!"
    assert tok.token_id("<|im_end|>") == 100265


def test_chat_and_openai_shape(model):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi<|im_end|>!"}]
    ids = model.tokenizer.chat_template(messages)
    assert ids.count(model.tokenizer.token_id("<|im_end|>")) == 2  # content's text stays text
    text = model.chat(messages, max_tokens=12, temperature=0)
    r = model.create_chat_completion(messages, max_tokens=12, temperature=0)
    assert r["choices"][0]["message"] == {"role": "assistant", "content": text}
    assert r["choices"][0]["finish_reason"] in ("stop", "length")
    assert r["usage"]["prompt_tokens"] == len(ids)
    assert 0 < r["usage"]["completion_tokens"] <= 12
    # completion_tokens is the library's count of generated tokens: none for max_tokens=0.
    r0 = model.create_chat_completion(messages, max_tokens=0, temperature=0)
    assert r0["usage"]["completion_tokens"] == 0 and r0["choices"][0]["message"]["content"] == ""
    chunks = list(model.create_chat_completion(messages, max_tokens=12, temperature=0, stream=True))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == r["choices"][0]["finish_reason"]


def test_busy_context_has_its_own_exception():
    # PHI4_ERR_BUSY (another thread is using the context) maps to ContextBusy, a Phi4Error.
    with pytest.raises(phi4.ContextBusy):
        phi4.errors.check(phi4._native.BUSY)
    assert issubclass(phi4.ContextBusy, phi4.Phi4Error)


def test_bad_arguments_raise(model):
    with pytest.raises(phi4.ModelFileError):
        phi4.Model("/nonexistent/model")
    with pytest.raises(phi4.InvalidArgument):
        phi4.Model(MODEL, weights="q3")
    ctx = model.context(n_ctx=16)
    with pytest.raises(phi4.InvalidArgument):
        ctx.eval([model.vocab_size])
    with pytest.raises(phi4.ContextFullError):
        ctx.eval(list(range(1, 18)))
    assert len(ctx) == 0
    with pytest.raises(phi4.InvalidArgument):
        model.generate([1, 2, 3], temperature=-1)
    with pytest.raises(phi4.InvalidArgument):
        model.tokenizer.chat_template([{"role": "user"}])
    with pytest.raises(phi4.InvalidArgument):
        model.detokenize([-5])


def test_breaking_out_and_keyboard_interrupt_stop_generation(model):
    ref = reference(1)
    s = model.generate(ref["ids"], max_tokens=200, temperature=1.0, seed=1, stream=True)
    for i, _ in enumerate(s):
        if i == 2:
            break
    s.close()
    assert s.finish_reason == "cancelled"
    # A real Ctrl-C (SIGINT) during generation: KeyboardInterrupt stops it, the model stays usable.
    import signal
    s = model.generate(ref["ids"], max_tokens=100000 // 100, temperature=1.0, seed=1, stream=True)
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT))
    pieces = 0
    with pytest.raises(KeyboardInterrupt):
        with s:
            timer.start()
            for _ in s:
                pieces += 1
                time.sleep(0.001)
    timer.cancel()
    assert s.finish_reason == "cancelled"
    assert pieces < 1000
    assert model.generate(ref["ids"], max_tokens=4, temperature=0) != ""


def test_library_calls_release_the_gil():
    # While one thread is inside a long library call (a 1000-token evaluation), another Python
    # thread keeps running: were the GIL held during the call, its counter could not move.
    m = phi4.Model(os.path.join(FIX, "models", "gqa4"), threads=1, n_ctx=1024)
    ref = json.load(open(os.path.join(FIX, "models", "gqa4", "reference", "prompts.json")))["prompts"][3]
    ids = (ref["ids"] * 4)[:1000]
    ctx = m.context()
    counter, stop = [0], [False]

    def spin():
        while not stop[0]:
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.01)
    best = 0
    for _ in range(5):
        ctx.reset()
        before = counter[0]
        ctx.eval(ids)
        best = max(best, counter[0] - before)
    stop[0] = True
    t.join()
    assert best > 1000


def _child_generate(model, ids, queue):
    queue.put(model.generate(ids, max_tokens=32, temperature=0))


def test_fork_after_load_works_in_child(model):
    """A process forked after the model is loaded and used (its worker threads running) generates
    the same greedy text in the child: the library's thread pool and locks survive fork()."""
    import multiprocessing
    ref = reference(1)
    parent = model.generate(ref["ids"], max_tokens=32, temperature=0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_generate, args=(model, ref["ids"], queue))
    proc.start()
    proc.join(60)
    alive = proc.is_alive()
    if alive:
        proc.kill()
    assert not alive, "the forked child hung"
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == parent


def test_logprobs_match_log_softmax_of_reference_logits(model):
    """OpenAI-shaped logprobs: each token's log-prob is log-softmax of transformers' logits at that
    position (the fixtures' reference); alternatives are the most likely tokens, in order."""
    import math
    import numpy as np
    ref = reference(3)
    logits = np.load(os.path.join(MODEL, "reference", "logits_3.npy")).astype(np.float64)
    j = 40
    s = model.generate(ref["ids"][:j], max_tokens=1, temperature=1.2, seed=3, stream=True, top_logprobs=3)
    "".join(s)
    recs = s.logprobs()
    row = logits[j - 1]
    lse = row.max() + math.log(np.exp(row - row.max()).sum())
    if recs:
        r = recs[0]
        assert abs(r["logprob"] - (row[r["token"]] - lse)) < 1e-4
        assert [t for t, _ in r["top_logprobs"]] == list(np.argsort(-row)[:3])
    out = model.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0,
                                       logprobs=True, top_logprobs=2)
    content = out["choices"][0]["logprobs"]["content"]
    assert len(content) == out["usage"]["completion_tokens"]
    for c in content:
        assert c["logprob"] <= 0 and len(c["top_logprobs"]) == 2
        assert c["top_logprobs"][0]["logprob"] >= c["top_logprobs"][1]["logprob"]
        assert c["logprob"] == c["top_logprobs"][0]["logprob"]  # greedy: the chosen token is the top one


def test_saved_state_continues_exactly_and_prefix_reuse(model, tmp_path):
    ref = reference(1)
    a = model.context()
    a.eval(ref["ids"][:20])
    state = a.save_state()
    a.save(tmp_path / "state.bin")
    b, c = model.context(), model.context()
    b.load_state(state)
    c.load(tmp_path / "state.bin")
    assert len(b) == len(c) == 20
    for ctx in (a, b, c):
        ctx.eval(ref["ids"][20:25])
    assert list(a.logits()) == list(b.logits()) == list(c.logits())
    bad = bytearray(state)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(phi4.InvalidArgument):
        b.load_state(bytes(bad))
    assert len(b) == 25
    # Prefix reuse: a prompt extending the context evaluates only its new part, same result.
    kept = b.reuse_prefix(ref["ids"][:30])
    assert kept == 25 and len(b) == 25
    b.eval(ref["ids"][25:30])
    fresh = model.context()
    fresh.eval(ref["ids"][:30])
    assert max(abs(x - y) for x, y in zip(b.logits(), fresh.logits())) < 1e-4
    # Model.generate reuses its context's prefix and still gives the reference greedy text.
    eog = set(model.eog_tokens)
    cut = next((i for i, t in enumerate(ref["greedy32"]) if t in eog), 32)
    for _ in range(2):
        assert model.generate(ref["ids"], max_tokens=32, temperature=0) == model.detokenize(ref["greedy32"][:cut])


def test_long_chat_drops_oldest_exchanges_keeps_system():
    m = phi4.Model(os.path.join(FIX, "models", "gqa4"), n_ctx=96)
    tok = m.tokenizer
    system = {"role": "system", "content": "Be brief."}
    turns = []
    for i in range(8):
        turns += [{"role": "user", "content": f"question number {i} with some words"},
                  {"role": "assistant", "content": f"answer number {i} with more words"}]
    messages = [system] + turns + [{"role": "user", "content": "last question"}]
    ids = tok.chat_template(messages, budget=60)
    dropped = tok.last_dropped
    assert len(ids) <= 60 and dropped > 0 and dropped % 2 == 0
    assert ids == tok.chat_template([system] + messages[1 + dropped:])
    assert len(tok.chat_template([system] + messages[1 + dropped - 2:])) > 60  # dropped no more than needed
    with pytest.raises(phi4.InvalidArgument):
        tok.chat_template([system, {"role": "user", "content": "x " * 200}], budget=20)
    # A chat longer than the context still answers (oldest turns dropped, not an error).
    assert isinstance(m.chat(messages, max_tokens=8, temperature=0), str)


def test_q8_0_kv_cache_on_the_demo_model():
    demo = os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf")
    m = phi4.Model(demo, n_ctx=256)
    ids = m.tokenize("import os\nimport sys\n\n\ndef main():\n    return os.path.join(sys.argv[0], 'x')\n")
    a, b = m.context(kv_type="f16"), m.context(kv_type="q8_0")
    a.eval(ids)
    b.eval(ids)
    la, lb = list(a.logits()), list(b.logits())
    assert max(abs(x - y) for x, y in zip(la, lb)) <= 0.02 * max(abs(x) for x in la)
    with pytest.raises(phi4.InvalidArgument):
        m.context(kv_type="q4")


def test_prompt_lookup_same_greedy_text_and_counts():
    """Greedy text with prompt lookup equals text without, and the drafts proposed and accepted
    are reported: the demo model asked to rewrite two functions (its output repeats the code)."""
    demo = os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf")
    prompt = open(os.path.join(ROOT, "tools", "lookup_tasks", "edit_rename.prompt.txt")).read().rstrip("\n")
    m = phi4.Model(demo, n_ctx=512)
    plain = m.generate(prompt, max_tokens=48, temperature=0)
    assert m.last_stream.lookup_counts() == (0, 0)
    f = phi4.Model(demo, n_ctx=512)
    assert f.generate(prompt, max_tokens=48, temperature=0, lookup=6) == plain
    proposed, accepted = f.last_stream.lookup_counts()
    assert proposed > 0 and 0 < accepted <= proposed


def _header_defines():
    text = open(os.path.join(ROOT, "include", "phi4.h")).read()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define (PHI4_\w+) (\d+)", text)}


def test_versions_come_from_the_header():
    d = _header_defines()
    assert phi4.version() == f"{d['PHI4_VERSION_MAJOR']}.{d['PHI4_VERSION_MINOR']}.{d['PHI4_VERSION_PATCH']}"
    assert phi4.__version__ == phi4.version()
    assert phi4.ABI_VERSION == d["PHI4_ABI_VERSION"]
    from importlib import metadata
    try:
        assert metadata.version("phi4") == phi4.version()
    except metadata.PackageNotFoundError:  # installed with --target: no metadata on the path
        pass


def test_ctypes_layouts_equal_the_c_compilers(tmp_path):
    # A C program prints sizeof and every field's offsetof for each struct the binding declares.
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "phi4.h"', "int main(void) {"]
    for cname, cls in phi4._native.STRUCTS.items():
        lines.append(f'    printf("{cname} %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'    printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    lines.append("    return 0;\n}")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([os.environ.get("CC", "cc"), "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)], check=True)
    c = dict(line.rsplit(" ", 1) for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                             check=True).stdout.splitlines())
    for cname, cls in phi4._native.STRUCTS.items():
        assert int(c[cname]) == ctypes.sizeof(cls), cname
        for field, _ in cls._fields_:
            assert int(c[f"{cname}.{field}"]) == getattr(cls, field).offset, f"{cname}.{field}"


def test_defaults_come_from_the_library():
    g = phi4._native.defaults(phi4._native.GenerateParams)
    s = phi4._native.defaults(phi4._native.SamplingParams)
    assert g.struct_size == ctypes.sizeof(g) and g.max_tokens == 256 and g.top_logprobs == -1 and not g.sampling
    assert s.top_k == 40 and abs(s.temperature - 0.8) < 1e-6 and abs(s.top_p - 0.95) < 1e-6


def test_a_library_of_another_abi_version_is_refused(tmp_path):
    src = tmp_path / "old.c"
    src.write_text("int phi4_abi_version(void) { return 1; }\n")
    lib = tmp_path / "libphi4.so.0"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    env = dict(os.environ, PHI4_LIBRARY=str(lib))
    r = subprocess.run([sys.executable, "-c", "import phi4"], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "C ABI version 1" in r.stderr and "version 2" in r.stderr


def test_model_generate_from_threads_at_once(model):
    # Two threads share one Model: each call gets a context (the kept one, or a fresh one while
    # the other holds it), and greedy text equals that of a call alone.
    ref = reference(1)
    alone = model.generate(ref["ids"], max_tokens=24, temperature=0)
    out = [None] * 4
    errors = []

    def run(i):
        try:
            out[i] = model.generate(ref["ids"], max_tokens=24, temperature=0)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and out == [alone] * 4
    # An unfinished stream holds the kept context; a second call still works meanwhile.
    s = model.generate(ref["ids"], max_tokens=24, temperature=0, stream=True)
    first = next(s)
    assert model.generate(ref["ids"], max_tokens=24, temperature=0) == alone
    assert first + "".join(s) == alone


def test_phi4_mini_architecture_greedy_matches_transformers():
    """Phi-4-mini's architecture (o200k vocabulary, partial rotary, LongRoPE, tied lm_head):
    greedy text equals transformers' generate, also for the prompt whose generation crosses
    original_max_position_embeddings, and in a context reused from prompt to prompt."""
    path = os.path.join(FIX, "models", "mini")
    m = phi4.Model(path)
    prompts = json.load(open(os.path.join(path, "reference", "prompts.json")))["prompts"]
    eog = set(m.eog_tokens)
    for ref in prompts:
        cut = next((i for i, t in enumerate(ref["greedy32"]) if t in eog), 32)
        assert m.generate(ref["ids"], max_tokens=32, temperature=0) == m.detokenize(ref["greedy32"][:cut]), ref["name"]
    # Phi-4-mini's o200k vocabulary and chat format (<|user|>…<|end|><|assistant|>).
    tok = phi4.Tokenizer(os.path.join(FIX, "tokenizer", "mini-small"))
    ids = tok.chat_template([{"role": "user", "content": "hi"}])
    assert ids[0] == tok.token_id("<|user|>") and ids[-2] == tok.token_id("<|end|>")
    assert ids[-1] == tok.token_id("<|assistant|>")


def test_checkpoint_whose_vocabulary_lists_its_special_tokens():
    """A Phi-4-mini checkpoint whose tokenizer.json lists the special tokens both as added tokens
    and in model.vocab (as the tokenizers library writes it): loads, its chat prompt equals
    transformers' apply_chat_template and its greedy text equals transformers' generate."""
    path = os.path.join(FIX, "models", "mini-vocab-specials")
    ref = json.load(open(os.path.join(path, "reference.json")))
    m = phi4.Model(path)
    tok = phi4.Tokenizer(path)
    assert tok.chat_template(ref["messages"]) == ref["prompt_ids"]
    assert m.generate(ref["prompt_ids"], max_tokens=len(ref["greedy"]), temperature=0) == m.detokenize(ref["greedy"])
    assert m.tokenize("<|end|>and", special=True) == [533, 427]
    assert m.tokenize("<|end|>and") != [533, 427] and m.tokenize("<|end|>and")[-1] == 427


def test_reasoning_system_prompt_preset():
    p = phi4.REASONING_SYSTEM_PROMPT
    assert p.startswith("You are Phi, a language model trained by Microsoft to help users.")
    assert p.endswith("Now, try to solve the following question through the above guidelines:")
    # Phi-4's own vocabulary adds nothing by itself; the preset is the caller's first message.
    tok = phi4.Tokenizer(os.path.join(FIX, "tokenizer", "phi4"))
    plain = tok.chat_template([{"role": "user", "content": "hi"}])
    preset = tok.chat_template([{"role": "system", "content": p}, {"role": "user", "content": "hi"}])
    assert len(preset) > len(plain) + 150


def test_constrained_generate_and_tool_calls():
    """generate() with response_format / json_schema / regex / grammar on the demo model (outputs
    checked here by hand: re.fullmatch, json.loads and the schema's facts), and tool calls through
    create_chat_completion."""
    demo = phi4.Model(os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"), n_ctx=1024)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                                               "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2}},
              "required": ["n", "tags"], "additionalProperties": False}
    for seed in range(3):
        for kw in ({"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}},
                   {"json_schema": schema}):
            v = json.loads(demo.generate("Data:", max_tokens=60, temperature=1, seed=seed, **kw))
            assert set(v) == {"n", "tags"} and 1 <= v["n"] <= 9 and len(v["tags"]) <= 2 and set(v["tags"]) <= {"x", "y"}
        assert isinstance(json.loads(demo.generate("Data:", max_tokens=60, temperature=1, seed=seed,
                                                   response_format={"type": "json_object"})), dict)
        assert re.fullmatch(r"[A-Z][a-z]{2,5}-\d{3}", demo.generate("Id:", max_tokens=20, temperature=1, seed=seed,
                                                                    regex=r"[A-Z][a-z]{2,5}-\d{3}"))
        assert demo.generate("Yes?", max_tokens=5, temperature=1, seed=seed, grammar='root ::= "yes" | "no"') in ("yes", "no")
    with pytest.raises(phi4.InvalidArgument, match="dynamicRef"):
        demo.generate("x", json_schema={"type": "string", "$dynamicRef": "#meta"})
    with pytest.raises(phi4.InvalidArgument):
        demo.generate("x", grammar="root ::= x", regex="x")
    tools = [{"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]
    r = demo.create_chat_completion([{"role": "user", "content": "2+3?"}], tools=tools, tool_choice="required",
                                    max_tokens=120, temperature=1, seed=1)
    ch = r["choices"][0]
    assert ch["finish_reason"] == "tool_calls" and ch["message"]["content"] is None
    args = json.loads(ch["message"]["tool_calls"][0]["function"]["arguments"])
    assert ch["message"]["tool_calls"][0]["function"]["name"] == "add" and isinstance(args["a"], int) and isinstance(args["b"], int)
    chunks = list(demo.create_chat_completion([{"role": "user", "content": "2+3?"}], tools=tools, tool_choice="required",
                                              max_tokens=120, temperature=1, seed=2, stream=True))
    calls = [c for ch in chunks for c in (ch["choices"][0]["delta"].get("tool_calls") or []) if ch["choices"]]
    assert calls and json.loads(calls[0]["function"]["arguments"]).keys() >= {"a", "b"}


def test_from_pretrained_without_huggingface_hub_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name == "huggingface_hub":
            raise ImportError("No module named 'huggingface_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(ImportError, match=r"phi4\[hub\]"):
        phi4.Model.from_pretrained("bartowski/phi-4-GGUF", filename="*Q4_K_M.gguf")


def test_a_name_not_in_the_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(phi4.Phi4Error, match="not in the Hugging Face cache"):
        phi4.Model("bartowski/phi-4-GGUF:Q4_K_M")


def test_constraint_match_answers_with_the_generation_grammar():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    assert phi4.constraint_match('{"n":3}', json_schema=schema)
    assert phi4.constraint_match('{"n": 3}', json_schema=json.dumps(schema))  # whitespace between tokens
    assert not phi4.constraint_match('{"n":0}', json_schema=schema)  # below the minimum
    assert not phi4.constraint_match('{"n":3', json_schema=schema)  # incomplete
    assert phi4.constraint_match("abcx", regex="[a-c]{3}x")
    assert not phi4.constraint_match("abcxx", regex="[a-c]{3}x")
    assert phi4.constraint_match("hi", grammar='root ::= "hi" | "ho"')
    assert phi4.constraint_match("{}", response_format={"type": "json_object"})
    assert not phi4.constraint_match("[]", response_format={"type": "json_object"})
    with pytest.raises(phi4.InvalidArgument):
        phi4.constraint_match("x", grammar="root ::= (")
