"""Batches: many requests decoded together give what each gives alone (transformers' greedy ids
for f32 weights in passes of at most 8 rows; the same text as Model.generate for quantized
weights); updates stream, cancel and refuse as documented."""
import json
import os

import pytest

import phi4

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODEL = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models", "gqa8")
EOG = {521, 513}


def references():
    return json.load(open(os.path.join(MODEL, "reference", "prompts.json")))["prompts"]


def greedy_reference(p):
    ids = p["greedy32"]
    return ids[:next((i for i, t in enumerate(ids) if t in EOG), len(ids))]


@pytest.fixture(scope="module")
def f32():
    return phi4.Model(MODEL, n_ctx=512)


@pytest.fixture(scope="module")
def q8():
    return phi4.Model(MODEL, weights="q8_0", n_ctx=512)


def test_batched_greedy_ids_match_transformers(f32):
    refs = references()
    # 2 slots and prompt chunks of 4: at most 6 rows a pass, each computed as alone in f32.
    b = phi4.Batch(f32, slots=2, prefill_chunk=4)
    got = b.run([p["ids"] for p in refs], temperature=0, max_tokens=32)
    for p, r in zip(refs, got):
        want = greedy_reference(p)
        assert r["tokens"] == want
        assert r["finish_reason"] == ("length" if len(want) == 32 else "stop")
        assert r["text"] == f32.detokenize(want) or "\ufffd" in f32.detokenize(want)


def alone(model, prompt, **opts):
    """The text of one generation on a fresh context (no prefix cached from an earlier call)."""
    return "".join(model.context().stream(prompt, **opts))


def test_generate_many_equals_generate_for_quantized_weights(q8):
    prompts = [p["ids"] for p in references()[:3]]  # each fits one prompt chunk of 64
    opts = dict(max_tokens=20, temperature=0.9, top_k=20, seed=7, stop=["zz"])
    texts = q8.generate_many(prompts, slots=3, prefill_chunk=64, **opts)
    for p, t in zip(prompts, texts):
        assert t == alone(q8, p, **opts)
    assert q8.generate_many([]) == []


def test_updates_stream_cancel_and_refuse(q8):
    b = phi4.Batch(q8, slots=1, max_queue=1)
    p = references()[0]["ids"]
    first = b.submit(p, max_tokens=12, temperature=0, top_logprobs=2)
    second = b.submit("def f(x):", max_tokens=12)
    with pytest.raises(phi4.ContextBusy):
        b.submit(p, max_tokens=4)
    assert b.counts() == (2, 0)
    text = {first: "", second: ""}
    done = {}
    steps = 0
    while len(done) < 2:
        for u in b.step():
            text[u.request] += u.text
            if u.request == first and u.token is not None:
                assert len(u.top_logprobs) == 2 and u.logprob is not None and u.logprob <= 0
            if u.finish_reason:
                done[u.request] = u
        steps += 1
        if steps == 3:
            assert b.counts() == (1, 1)
            b.cancel(second)  # still waiting
    assert done[first].finish_reason == "length" and done[first].completion_tokens == 12
    assert text[first] == alone(q8, p, max_tokens=12, temperature=0)
    assert done[second].finish_reason == "cancelled" and text[second] == ""
    assert b.counts() == (0, 0)
    with pytest.raises(phi4.InvalidArgument):
        b.submit([], max_tokens=1)
    with pytest.raises(phi4.InvalidArgument):
        phi4.Batch(q8, slots=0)


def test_openai_completions_share_the_servers_mapping(q8):
    r = q8.create_completion("def add(a, b):", max_tokens=6, temperature=0, logprobs=2)
    assert r["object"] == "text_completion" and r["choices"][0]["text"] == alone(q8, q8.tokenize("def add(a, b):"), max_tokens=6, temperature=0)
    lp = r["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == r["usage"]["completion_tokens"] == len(lp["text_offset"])
    chunks = list(q8.create_completion("def add(a, b):", max_tokens=6, temperature=0, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == r["choices"][0]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == r["usage"]["completion_tokens"]
    with pytest.raises(phi4.InvalidArgument, match="temperature"):
        q8.create_chat_completion([{"role": "user", "content": "hi"}], temperature="hot")
    with pytest.raises(phi4.InvalidArgument, match="n must be 1"):
        q8.create_chat_completion([{"role": "user", "content": "hi"}], n=3)
    with pytest.raises(phi4.ContextFullError):
        q8.create_completion("x " * 600, max_tokens=2)
    # The context is still usable afterwards.
    assert q8.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=2)["usage"]["completion_tokens"] <= 2
