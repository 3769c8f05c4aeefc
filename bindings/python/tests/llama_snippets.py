"""Usage snippets of llama-cpp-python's high-level API — its README's and docs' examples,
rewritten for the bundled demo model — run unchanged against `llama_cpp.Llama` and `phi4.Llama`.

Each snippet takes the module (`llama_cpp` or `phi4`) and the model path and returns plain data
(response dicts, lists, strings). `GREEDY` names the snippets whose text must not depend on the
engine's random generator (temperature 0, or no generation); the others are compared by the
shape of what they return (keys and value types). tools/compare_llama_cpp_python.py runs both
engines and writes the reference this package's tests compare phi4 with
(fixtures/llama_cpp_reference.json).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

SNIPPETS: Dict[str, Callable[[Any, str], Any]] = {}
GREEDY: List[str] = []
#: The prompt and options of the greedy completion snippets (for reporting, where two engines'
#: texts part, the log-probability gap between the two tokens chosen there).
PROMPTS: Dict[str, Any] = {
    "readme_completion_greedy": ("Q: Name the modules of the standard library. A: ", {"max_tokens": 32}),
    "call_default_max_tokens": ("def read_file(path):", {"max_tokens": 16}),
    "create_completion_stream": ("import os\n\ndef", {"max_tokens": 24}),
    "completion_many_stops": ("def parse(text):\n", {"max_tokens": 64}),
    "completion_max_tokens_none": ("def f(x):\n", {"max_tokens": 80}),
    "completion_repeat_penalty": ("for i in range(10):\n", {"max_tokens": 32, "repeat_penalty": 1.3}),
    "completion_presence_frequency": ("x = [", {"max_tokens": 32, "presence_penalty": 0.8, "frequency_penalty": 0.4}),
}


def snippet(greedy: bool) -> Callable[[Callable[[Any, str], Any]], Callable[[Any, str], Any]]:
    def register(f: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
        SNIPPETS[f.__name__] = f
        if greedy:
            GREEDY.append(f.__name__)
        return f
    return register


def llama(m: Any, path: str, **kw: Any) -> Any:
    return m.Llama(model_path=path, verbose=False, **kw)


# ---- Completions (README "High-level API") ------------------------------------------------------

@snippet(greedy=False)
def readme_completion(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm("Q: Name the modules of the standard library. A: ", max_tokens=32, stop=["Q:", "\n"], echo=True)


@snippet(greedy=True)
def readme_completion_greedy(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm("Q: Name the modules of the standard library. A: ", max_tokens=32, stop=["Q:", "\n"], echo=True,
               temperature=0)


@snippet(greedy=True)
def call_default_max_tokens(m: Any, path: str) -> Any:
    out = llama(m, path)("def read_file(path):", temperature=0)
    return out


@snippet(greedy=True)
def create_completion_stream(m: Any, path: str) -> Any:
    llm = llama(m, path)
    chunks = list(llm.create_completion("import os\n\ndef", max_tokens=24, temperature=0, stream=True))
    return {"text": "".join(c["choices"][0]["text"] for c in chunks), "last": chunks[-1]}


@snippet(greedy=True)
def completion_token_prompt(m: Any, path: str) -> Any:
    llm = llama(m, path)
    ids = llm.tokenize(b"class Parser:\n    def", add_bos=False)
    return llm.create_completion(ids, max_tokens=20, temperature=0)


@snippet(greedy=True)
def completion_many_stops(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm("def parse(text):\n", max_tokens=64, temperature=0, stop=["return", "raise", "yield", "import", "print",
                                                                          "while"])


@snippet(greedy=True)
def completion_max_tokens_none(m: Any, path: str) -> Any:
    llm = llama(m, path, n_ctx=96)
    out = llm("def f(x):\n", max_tokens=None, temperature=0)
    return out


@snippet(greedy=True)
def completion_repeat_penalty(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm("for i in range(10):\n", max_tokens=32, temperature=0, repeat_penalty=1.3)


@snippet(greedy=True)
def completion_presence_frequency(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm("x = [", max_tokens=32, temperature=0, presence_penalty=0.8, frequency_penalty=0.4)


@snippet(greedy=True)
def completion_logit_bias(m: Any, path: str) -> Any:
    llm = llama(m, path)
    first = llm("import", max_tokens=1, temperature=0)
    banned = llm.tokenize(first["choices"][0]["text"].encode(), add_bos=False)[0]
    return llm("import", max_tokens=8, temperature=0, logit_bias={banned: -100.0})


@snippet(greedy=True)
def completion_logprobs(m: Any, path: str) -> Any:
    llm = llama(m, path, logits_all=True)
    out = llm("def main():", max_tokens=6, temperature=0, logprobs=3)
    lp = out["choices"][0]["logprobs"]
    # The values as plain floats (llama-cpp-python gives numpy scalars), rounded for comparison.
    out["choices"][0]["logprobs"] = {"tokens": lp["tokens"], "text_offset": lp["text_offset"],
                                     "token_logprobs": [round(float(x), 2) for x in lp["token_logprobs"]],
                                     "top_logprobs": [sorted(t) for t in lp["top_logprobs"]]}
    return out


@snippet(greedy=False)
def completion_seeded_twice_same(m: Any, path: str) -> Any:
    llm = llama(m, path)
    a = llm("def", max_tokens=16, seed=1234)
    b = llm("def", max_tokens=16, seed=1234)
    return {"same": a["choices"][0]["text"] == b["choices"][0]["text"], "a": a}


@snippet(greedy=False)
def completion_typical(m: Any, path: str) -> Any:
    return llama(m, path)("def", max_tokens=16, typical_p=0.8, seed=7)


@snippet(greedy=False)
def completion_mirostat(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return [llm("class", max_tokens=16, mirostat_mode=mode, mirostat_tau=4.0, mirostat_eta=0.2, seed=3)
            for mode in (1, 2)]


# ---- Grammars ----------------------------------------------------------------------------------

@snippet(greedy=True)
def grammar_from_string(m: Any, path: str) -> Any:
    grammar = m.LlamaGrammar.from_string('root ::= "x = " [0-9]+ "\\n"', verbose=False)
    out = llama(m, path)("# a number\n", grammar=grammar, max_tokens=8, temperature=0)
    text = out["choices"][0]["text"]
    return {"matches": text.startswith("x = ") and text[4:5].isdigit(), "out": out}


@snippet(greedy=True)
def grammar_json_schema(m: Any, path: str) -> Any:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                               "size": {"type": "integer"}}, "required": ["name", "size"],
              "additionalProperties": False}
    grammar = m.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    out = llama(m, path)("config = ", grammar=grammar, max_tokens=48, temperature=0)
    try:
        value = json.loads(out["choices"][0]["text"])
        valid = isinstance(value, dict) and set(value) == {"name", "size"}
    except ValueError:
        valid = False
    return {"valid": valid, "finish_reason": out["choices"][0]["finish_reason"]}


# ---- Chat (README "Chat Completion", "JSON and JSON Schema Mode") -------------------------------

@snippet(greedy=True)
def chat_basic(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm.create_chat_completion(messages=[
        {"role": "system", "content": "You are an assistant who writes Python."},
        {"role": "user", "content": "Write a function that reads a file."}], max_tokens=32, temperature=0)


@snippet(greedy=False)
def chat_defaults(m: Any, path: str) -> Any:
    llm = llama(m, path, n_ctx=256)
    return llm.create_chat_completion(messages=[{"role": "user", "content": "Hello"}], max_tokens=24)


@snippet(greedy=True)
def chat_multi_turn(m: Any, path: str) -> Any:
    llm = llama(m, path)
    return llm.create_chat_completion(messages=[
        {"role": "user", "content": "What does os.path.join do?"},
        {"role": "assistant", "content": "It joins paths."},
        {"role": "user", "content": "Show an example."}], max_tokens=24, temperature=0)


@snippet(greedy=True)
def chat_stream(m: Any, path: str) -> Any:
    llm = llama(m, path)
    chunks = list(llm.create_chat_completion(messages=[{"role": "user", "content": "List three modules."}],
                                             max_tokens=16, temperature=0, stream=True))
    return {"first": chunks[0], "last": chunks[-1],
            "text": "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)}


@snippet(greedy=True)
def chat_json_object(m: Any, path: str) -> Any:
    llm = llama(m, path)
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "Give a JSON object."}],
                                     response_format={"type": "json_object"}, max_tokens=40, temperature=0)
    text = out["choices"][0]["message"]["content"]
    complete = out["choices"][0]["finish_reason"] == "stop"
    try:
        ok = isinstance(json.loads(text), dict)
    except ValueError:
        ok = False
    return {"json_object_when_complete": ok or not complete, "keys": sorted(out)}


@snippet(greedy=True)
def chat_json_schema(m: Any, path: str) -> Any:
    llm = llama(m, path)
    schema = {"type": "object", "properties": {"team_name": {"type": "string", "maxLength": 10}},
              "required": ["team_name"]}
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "Who won?"}],
                                     response_format={"type": "json_object", "schema": schema}, max_tokens=40,
                                     temperature=0)
    text = out["choices"][0]["message"]["content"]
    try:
        ok = "team_name" in json.loads(text)
    except ValueError:
        ok = out["choices"][0]["finish_reason"] == "length"
    return {"follows_schema": ok}


# ---- Tokens ------------------------------------------------------------------------------------

@snippet(greedy=True)
def tokenize_detokenize(m: Any, path: str) -> Any:
    llm = llama(m, path)
    ids = llm.tokenize("naïve café — 東京 🚀 def f(): pass".encode())
    return {"ids": ids, "text": llm.detokenize(ids).decode(), "special": llm.tokenize(b"<|im_end|>", special=True)}


@snippet(greedy=True)
def model_queries(m: Any, path: str) -> Any:
    llm = llama(m, path, n_ctx=0)
    return {"n_ctx": llm.n_ctx(), "n_vocab": llm.n_vocab(), "n_embd": llm.n_embd(), "eos": llm.token_eos(),
            "bos": llm.token_bos()}


# ---- Embeddings (README "Embeddings") ----------------------------------------------------------

@snippet(greedy=True)
def embed_default_pooling(m: Any, path: str) -> Any:
    llm = llama(m, path, embedding=True)
    e = llm.embed("Hello, world!")
    return {"rows": len(e), "width": len(e[0]), "head": [round(x, 3) for x in e[0][:4]]}


@snippet(greedy=True)
def embed_mean_normalized(m: Any, path: str) -> Any:
    llm = llama(m, path, embedding=True, pooling_type=m.LLAMA_POOLING_TYPE_MEAN)
    vs = llm.embed(["import os", "def main():", "class A: pass"], normalize=True)
    return {"count": len(vs), "width": len(vs[0]), "norms": [round(sum(x * x for x in v), 4) for v in vs],
            "head": [round(x, 3) for x in vs[1][:4]]}


@snippet(greedy=True)
def create_embedding_list(m: Any, path: str) -> Any:
    llm = llama(m, path, embedding=True, pooling_type=m.LLAMA_POOLING_TYPE_LAST)
    out = llm.create_embedding(["first text", "second text"])
    for d in out["data"]:
        d["embedding"] = [round(x, 3) for x in d["embedding"][:4]]
    return out


# ---- State -------------------------------------------------------------------------------------

@snippet(greedy=True)
def save_load_state(m: Any, path: str) -> Any:
    llm = llama(m, path)
    llm.eval(llm.tokenize(b"def fetch(url):\n", add_bos=False))
    state = llm.save_state()
    first = llm.create_completion(llm.tokenize(b"def fetch(url):\n", add_bos=False), max_tokens=12, temperature=0)
    llm.reset()
    llm.load_state(state)
    again = llm.create_completion(llm.tokenize(b"def fetch(url):\n", add_bos=False), max_tokens=12, temperature=0)
    return {"same": first["choices"][0]["text"] == again["choices"][0]["text"], "n_tokens_type": type(llm.n_tokens).__name__,
            "text": first["choices"][0]["text"]}


@snippet(greedy=True)
def eval_and_reset(m: Any, path: str) -> Any:
    llm = llama(m, path)
    llm.eval(llm.tokenize(b"x = 1", add_bos=False))
    n = llm.n_tokens
    llm.reset()
    return {"after_eval": n, "after_reset": llm.n_tokens}


# ---- Python callables --------------------------------------------------------------------------

@snippet(greedy=True)
def logits_processor_ban(m: Any, path: str) -> Any:
    llm = llama(m, path)
    newline = llm.token_nl()

    def no_newline(input_ids: Any, scores: Any) -> Any:
        scores[newline] = -float("inf")
        return scores
    out = llm("def main():", max_tokens=12, temperature=0, logits_processor=m.LogitsProcessorList([no_newline]))
    return {"text": out["choices"][0]["text"]}


@snippet(greedy=True)
def stopping_criteria_count(m: Any, path: str) -> Any:
    llm = llama(m, path)
    start = len(llm.tokenize(b"import", add_bos=False))

    def after_five(input_ids: Any, logits: Any) -> bool:
        return len(input_ids) - start >= 5
    out = llm("import", max_tokens=30, temperature=0, stopping_criteria=m.StoppingCriteriaList([after_five]))
    return {"usage_at_most": out["usage"]["completion_tokens"] <= 6, "finish_reason": out["choices"][0]["finish_reason"]}


@snippet(greedy=True)
def generate_low_level(m: Any, path: str) -> Any:
    llm = llama(m, path)
    out = []
    for tok in llm.generate(llm.tokenize(b"def", add_bos=False), top_k=1, temp=0.0):
        out.append(tok)
        if len(out) == 8:
            break
    return {"ids": out}
