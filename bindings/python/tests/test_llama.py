"""phi4.Llama against llama-cpp-python (the reference tools/compare_llama_cpp_python.py recorded
from llama-cpp-python 0.3.36 on the demo model), and embeddings against transformers."""
import json
import math
import os
import sys
import warnings

import pytest

import phi4

sys.path.insert(0, os.path.dirname(__file__))
import llama_compare  # noqa: E402
import llama_snippets  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEMO = os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf")
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models")
REFERENCE = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "llama_cpp_reference.json")))


@pytest.fixture(scope="module")
def results():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, f in llama_snippets.SNIPPETS.items():
            out[name] = llama_compare.plain(f(phi4, DEMO))
    return out


def test_every_snippet_has_llama_cpp_pythons_keys_and_types(results):
    assert len(results) >= 25
    for name, value in results.items():
        assert llama_compare.shape(value) == REFERENCE["snippets"][name]["shape"], name


def test_greedy_snippets_give_llama_cpps_text(results):
    greedy = [n for n in results if n in llama_snippets.GREEDY]
    same = [n for n in greedy if llama_compare.first_difference(results[n], REFERENCE["snippets"][n]["value"]) is None]
    # The two that differ part at near-ties (log-probability gaps of 0.0006 and 0.004 on the
    # 8-bit demo model, where llama.cpp's 8-bit activations and libphi4's f32 ones round apart).
    assert len(same) >= 0.9 * len(greedy), sorted(set(greedy) - set(same))
    recorded = [n for n in greedy if REFERENCE["snippets"][n]["phi4_identical"]]
    assert set(recorded) <= set(same), sorted(set(recorded) - set(same))


def test_snippet_invariants(results):
    assert results["completion_seeded_twice_same"]["same"]
    assert results["grammar_from_string"]["matches"]
    assert results["grammar_json_schema"]["valid"]
    assert results["chat_json_schema"]["follows_schema"]
    assert results["save_load_state"]["same"]
    assert results["stopping_criteria_count"]["usage_at_most"]
    assert all(abs(n - 1) < 1e-3 for n in results["embed_mean_normalized"]["norms"])
    assert results["call_default_max_tokens"]["usage"]["completion_tokens"] <= 16  # __call__'s default


def test_defaults_are_llama_cpp_pythons():
    import inspect
    sig = inspect.signature(phi4.Llama.create_completion).parameters
    assert (sig["max_tokens"].default, sig["temperature"].default, sig["top_k"].default, sig["top_p"].default,
            sig["min_p"].default) == (16, 0.8, 40, 0.95, 0.05)
    chat = inspect.signature(phi4.Llama.create_chat_completion).parameters
    assert (chat["temperature"].default, chat["max_tokens"].default) == (0.2, None)
    assert inspect.signature(phi4.Llama.__init__).parameters["n_ctx"].default == 512


def test_options_that_change_the_output_are_not_ignored():
    with pytest.raises(ValueError, match="rope_freq_base"):
        phi4.Llama(DEMO, rope_freq_base=20000.0, verbose=False)
    with pytest.raises(ValueError, match="lora_path"):
        phi4.Llama(DEMO, lora_path="x.gguf", verbose=False)
    with pytest.raises(TypeError, match="no_such_option"):
        phi4.Llama(DEMO, no_such_option=1, verbose=False)
    with pytest.raises(ValueError, match="chat_format"):
        phi4.Llama(DEMO, chat_format="llama-2", verbose=False)
    with pytest.warns(UserWarning, match="n_gpu_layers"):
        llm = phi4.Llama(DEMO, n_gpu_layers=-1, use_mmap=True, flash_attn=True, chat_format="phi-4", verbose=False)
    with pytest.raises(TypeError):
        llm.tokenize("text")
    with pytest.raises(ValueError, match="logprobs"):
        llm("x", logprobs=1)
    with pytest.raises(ValueError, match="suffix"):
        llm("x", suffix="y")
    with pytest.raises(RuntimeError, match="embedding=True"):
        llm.embed("x")
    with pytest.warns(UserWarning, match="tfs_z"):
        llm("x", max_tokens=2, tfs_z=0.9)
    with pytest.raises(phi4.InvalidArgument, match="mirostat"):
        llm("x", max_tokens=2, mirostat_mode=3)
    with pytest.raises(ValueError, match="exceed context window"):
        phi4.Llama(DEMO, n_ctx=8, verbose=False)("word " * 20)


def test_response_format_and_grammar_reach_the_engine():
    llm = phi4.Llama(DEMO, verbose=False)
    out = llm("a = ", grammar='root ::= "[" [1-3] "]"', max_tokens=6, temperature=0)
    assert out["choices"][0]["text"] in ("[1]", "[2]", "[3]")
    with pytest.raises(phi4.InvalidArgument):
        llm("a = ", grammar="root ::= (", max_tokens=4)
    chat = llm.create_chat_completion([{"role": "user", "content": "x"}], max_tokens=30, temperature=0,
                                      response_format={"type": "json_object", "schema": {"type": "array", "maxItems": 2}})
    text = chat["choices"][0]["message"]["content"]
    if chat["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(text), list)
    else:
        assert text.startswith("[")


def test_many_stop_strings():
    llm = phi4.Llama(DEMO, verbose=False)
    free = llm("def f(x):\n", max_tokens=24, temperature=0)["choices"][0]["text"]
    words = free.split()
    stops = ["@@%d" % i for i in range(10)] + [words[2]]
    out = llm("def f(x):\n", max_tokens=24, temperature=0, stop=stops)
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][0]["text"] == free[:free.index(words[2])]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_match_transformers():
    # Mean over the final-norm outputs, through the C ABI, all inputs in one call (f32 vs f32).
    for name in ("gqa4", "gqa8", "mha"):
        ref = json.load(open(os.path.join(FIX, name, "reference", "embeddings.json")))
        model = phi4.Model(os.path.join(FIX, name))
        ctx = phi4.Context(model, n_ctx=256, n_batch=64)  # the long input spans several passes
        for pooling, key in (("mean", "mean"), ("last", "last"), ("cls", "first")):
            got = ctx.embed(ref["inputs"], pooling=pooling)
            assert min(cosine(g, w) for g, w in zip(got, ref[key])) >= 1 - 1e-4, (name, pooling)
        rows = ctx.embed([ref["inputs"][0]], pooling="none")[0]
        assert len(rows) == len(ref["inputs"][0])
        assert min(cosine(g, w) for g, w in zip(rows, ref["none"]["0"])) >= 1 - 1e-4
        unit = ctx.embed([ref["inputs"][1]], normalize=True)[0]
        assert abs(sum(x * x for x in unit) - 1) < 1e-5
        assert len(ctx) == 0  # the context's own tokens are untouched


def test_model_embed_and_errors():
    model = phi4.Model(DEMO)
    one = model.embed("import os")
    many = model.embed(["import os", "def f(): pass"])
    assert len(one) == model._info.hidden_size and len(many) == 2
    assert max(abs(a - b) for a, b in zip(one, many[0])) == 0  # batching does not change a vector (q8_0)
    with pytest.raises(phi4.InvalidArgument):
        model.embed([""])
    with pytest.raises(phi4.InvalidArgument):
        model.embed("x", pooling="max")


def test_load_progress():
    seen = []
    phi4.Model(os.path.join(FIX, "gqa4"), weights="q8_0", progress=lambda done, total: seen.append((done, total)))
    assert seen and [d for d, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
