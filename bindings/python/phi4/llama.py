"""llama-cpp-python's high-level API over libphi4: code written for `llama_cpp.Llama` runs by
changing its import (`from phi4 import Llama`).

The class takes llama-cpp-python 0.3's constructor keywords and methods with their defaults and
return shapes: `__call__` / `create_completion` (16 tokens, temperature 0.8, top_k 40, top_p 0.95,
min_p 0.05), `create_chat_completion` (temperature 0.2, until the end of text or of the context),
`tokenize` (bytes in), `detokenize` (bytes out), `embed` / `create_embedding`, `save_state` /
`load_state`, `reset`, `eval`, `generate`, `from_pretrained`; and `LlamaGrammar`,
`LogitsProcessorList`, `StoppingCriteriaList`. Sampling follows llama.cpp's samplers (top-k,
typical, top-p, min-p, temperature; or Mirostat 1 / 2); a seed gives reproducible text, but not
llama.cpp's text (the random generators differ). Options that would change the output and that
libphi4 cannot honour raise an error naming them, never pass silently; options that only concern
GPUs or memory mapping are accepted (`n_gpu_layers` with one warning: libphi4 runs on the CPU).

`phi4.Model` keeps its own defaults; README "Coming from llama-cpp-python" lists the differences.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import sys
import time
import uuid
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _native as N
from .context import constraint_of, sampling_params
from .errors import InvalidArgument, check
from .errors import ids as ids_array
from .model import Model

#: llama.cpp's "pick a random seed".
LLAMA_DEFAULT_SEED = 0xFFFFFFFF
#: llama.cpp's pooling types (`pooling_type=`).
LLAMA_POOLING_TYPE_UNSPECIFIED, LLAMA_POOLING_TYPE_NONE, LLAMA_POOLING_TYPE_MEAN, LLAMA_POOLING_TYPE_CLS, \
    LLAMA_POOLING_TYPE_LAST, LLAMA_POOLING_TYPE_RANK = -1, 0, 1, 2, 3, 4
_POOLING_NAMES = {LLAMA_POOLING_TYPE_NONE: "none", LLAMA_POOLING_TYPE_MEAN: "mean", LLAMA_POOLING_TYPE_CLS: "cls",
                  LLAMA_POOLING_TYPE_LAST: "last"}

# Constructor keywords that concern only where or how the weights are held (GPUs, mmap, NUMA,
# batching granularity, timing): accepted, no effect on the output.
_NO_EFFECT = {"split_mode", "main_gpu", "tensor_split", "use_mmap", "use_mlock", "n_ubatch", "n_threads_batch",
              "offload_kqv", "flash_attn", "op_offload", "swa_full", "no_perf", "numa", "attention_type",
              "rope_scaling_type", "yarn_orig_ctx"}
# Keywords that change the output, with the value that leaves it unchanged.
_MUST_BE_DEFAULT = {"vocab_only": False, "kv_overrides": None, "rope_freq_base": 0.0, "rope_freq_scale": 0.0,
                    "yarn_ext_factor": -1.0, "yarn_attn_factor": 1.0, "yarn_beta_fast": 32.0, "yarn_beta_slow": 1.0,
                    "lora_base": None, "lora_path": None, "lora_scale": 1.0, "chat_handler": None, "draft_model": None,
                    "tokenizer": None, "spm_infill": False}


class LlamaGrammar:
    """A grammar for `grammar=`: GBNF text (llama.cpp's syntax, start rule `root`), or a JSON
    Schema, which libphi4 compiles itself (no conversion to GBNF, so every keyword it supports
    holds)."""

    def __init__(self, *, _grammar: str, _kind: int = N.CONSTRAINT_GRAMMAR):
        self._grammar = _grammar
        self._kind = _kind

    @classmethod
    def from_string(cls, grammar: str, verbose: bool = True) -> "LlamaGrammar":
        """A GBNF grammar from its text."""
        return cls(_grammar=grammar)

    @classmethod
    def from_file(cls, file: Union[str, os.PathLike], verbose: bool = True) -> "LlamaGrammar":
        """A GBNF grammar from a file."""
        with open(file, encoding="utf-8") as f:
            return cls.from_string(f.read(), verbose)

    @classmethod
    def from_json_schema(cls, json_schema: str, verbose: bool = True) -> "LlamaGrammar":
        """The outputs that are valid instances of a JSON Schema (its JSON text)."""
        return cls(_grammar=json_schema, _kind=N.CONSTRAINT_JSON_SCHEMA)


class LogitsProcessorList(list):
    """Callables (input_ids, scores) -> scores applied in order to each step's logits."""

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


class StoppingCriteriaList(list):
    """Callables (input_ids, logits) -> bool; generation stops when any returns true."""

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        return any(criterion(input_ids, logits) for criterion in self)


class LlamaState:
    """What `save_state` returns: the context's tokens and KV cache (libphi4's checksummed state)."""

    def __init__(self, input_ids: List[int], llama_state: bytes, llama_state_size: int, seed: int):
        self.input_ids = input_ids
        self.llama_state = llama_state
        self.llama_state_size = llama_state_size
        self.seed = seed


def _np() -> Any:
    try:
        import numpy
    except ImportError:
        raise ImportError("logits_processor, stopping_criteria and logits_all need numpy: pip install numpy") from None
    return numpy


class Llama:
    """A Phi-4 model with llama-cpp-python's `Llama` interface (see the module's text)."""

    def __init__(self, model_path: str, *, n_gpu_layers: int = 0, seed: int = LLAMA_DEFAULT_SEED, n_ctx: int = 512,
                 n_batch: int = 512, n_threads: Optional[int] = None, pooling_type: int = LLAMA_POOLING_TYPE_UNSPECIFIED,
                 logits_all: bool = False, embedding: bool = False, last_n_tokens_size: int = 64,
                 chat_format: Optional[str] = None, type_k: Optional[int] = None, type_v: Optional[int] = None,
                 verbose: bool = True, **kwargs: Any):
        for name, value in kwargs.items():
            if name in _NO_EFFECT:
                continue
            if name in _MUST_BE_DEFAULT:
                if value != _MUST_BE_DEFAULT[name]:
                    raise ValueError(f"{name}={value!r} is not supported by libphi4 (it would change the output)")
                continue
            raise TypeError(f"Llama() got an unexpected keyword argument {name!r}")
        if n_gpu_layers:
            warnings.warn("n_gpu_layers is ignored: libphi4 runs on the CPU", stacklevel=2)
        if type_k is not None or type_v is not None:
            raise ValueError("type_k / type_v are not supported; libphi4's KV cache is f16 for quantized weights")
        if pooling_type not in _POOLING_NAMES and pooling_type != LLAMA_POOLING_TYPE_UNSPECIFIED:
            raise ValueError(f"pooling_type {pooling_type} is not supported (none, mean, cls or last)")
        if not os.path.exists(model_path):
            raise ValueError(f"Model path does not exist: {model_path}")
        self.model_path = model_path
        self.verbose = verbose
        self._seed = seed
        self.n_batch = int(n_batch)
        self.last_n_tokens_size = int(last_n_tokens_size)
        self._logits_all = bool(logits_all)
        self._embedding = bool(embedding)
        self._pooling = pooling_type
        self._model = Model(model_path, threads=n_threads)
        trained = self._model.trained_context_length
        self._n_ctx = trained if n_ctx == 0 else min(int(n_ctx), trained)
        from .context import Context
        self._ctx = Context(self._model, self._n_ctx, n_batch=self.n_batch, threads=n_threads)
        self._tokens: List[int] = []
        self._scores: Any = None
        self._tfs_warned = False
        family = "phi-4-mini" if self._model.tokenizer.tokenize("<|assistant|>", special=True) != \
            self._model.tokenizer.tokenize("<|assistant|>") else "phi-4"
        if chat_format is not None and chat_format.lower().replace("_", "-") not in (family, family.replace("-", "")):
            raise ValueError(f"chat_format {chat_format!r}: this model's chat template is {family!r} (the family's own); "
                             "other formats are not supported")
        self.chat_format = family
        if verbose:
            info = self._model._info
            print(f"phi4: loaded {model_path}: {info.layer_count} layers, hidden {info.hidden_size}, "
                  f"vocabulary {info.vocab_size}, n_ctx {self._n_ctx}", file=sys.stderr)

    # ---- Properties and small queries ---------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """Tokens in the context."""
        return len(self._tokens)

    @property
    def input_ids(self) -> List[int]:
        """The context's tokens."""
        return list(self._tokens)

    @property
    def scores(self) -> Any:
        """With logits_all: the logits of every evaluated position (numpy [n_tokens, n_vocab])."""
        return self._scores

    def n_ctx(self) -> int:
        """The context's capacity."""
        return self._n_ctx

    def n_embd(self) -> int:
        """The width of embeddings (hidden size)."""
        return self._model._info.hidden_size

    def n_vocab(self) -> int:
        """The width of the logits."""
        return self._model.vocab_size

    def token_eos(self) -> int:
        """The end-of-sequence id."""
        return self._model.eos_token

    def token_bos(self) -> int:
        """The beginning-of-sequence id (-1: none)."""
        return self._model.bos_token

    def token_nl(self) -> int:
        """The id of "\\n"."""
        return self._model.tokenizer.tokenize("\n")[0]

    def pooling_type(self) -> int:
        """The pooling of `embed`: the constructor's, else none (llama.cpp's default for a causal model)."""
        return LLAMA_POOLING_TYPE_NONE if self._pooling == LLAMA_POOLING_TYPE_UNSPECIFIED else self._pooling

    def set_seed(self, seed: int) -> None:
        """The seed of the next sampling."""
        self._seed = seed

    def close(self) -> None:
        """Frees the context and the model."""
        self._ctx = None  # type: ignore[assignment]
        self._model = None  # type: ignore[assignment]

    def __enter__(self) -> "Llama":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- Tokens -------------------------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of UTF-8 `text`; `add_bos` prepends the BOS token only when the model's
        tokenizer asks for it (Phi-4's does not, as in llama.cpp)."""
        if isinstance(text, str):
            raise TypeError("tokenize takes bytes (text.encode('utf-8')), as llama-cpp-python does")
        ids = self._model.tokenizer.tokenize(bytes(text).decode("utf-8", "replace"), special=special)
        if add_bos and self._model._info.adds_bos and self.token_bos() >= 0:
            ids = [self.token_bos()] + ids
        return ids

    def detokenize(self, tokens: Sequence[int], prev_tokens: Optional[Sequence[int]] = None,
                   special: bool = False) -> bytes:
        """The bytes of `tokens` (special tokens only with `special`)."""
        specials = set(self._model.eog_tokens) | {self.token_bos()}
        return b"".join(self._model.tokenizer.token_bytes(t) for t in tokens if special or t not in specials)

    # ---- Low-level evaluation -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget the context's tokens."""
        self._ctx.reset()
        self._tokens = []
        self._scores = None

    def eval(self, tokens: Sequence[int]) -> None:
        """Append `tokens` to the context (logits of every position kept with logits_all)."""
        tokens = list(tokens)
        if not tokens:
            return
        self._ctx.eval(tokens, all_logits=self._logits_all)
        self._tokens += tokens
        if self._logits_all:
            np = _np()
            rows = np.stack([np.frombuffer(self._ctx.logits(i), dtype=np.float32) for i in range(len(tokens))])
            self._scores = rows if self._scores is None else np.concatenate([self._scores, rows])

    def _prefill(self, tokens: List[int]) -> None:
        """Make the context hold the longest prefix it shares with `tokens` (at least one token
        of them left to evaluate)."""
        kept = self._ctx.reuse_prefix(tokens)
        self._tokens = tokens[:kept]
        if self._scores is not None:
            self._scores = self._scores[:kept]

    def generate(self, tokens: Sequence[int], top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 typical_p: float = 1.0, temp: float = 0.80, repeat_penalty: float = 1.0,
                 reset: bool = True, frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
                 tfs_z: float = 1.0, mirostat_mode: int = 0, mirostat_tau: float = 5.0, mirostat_eta: float = 0.1,
                 penalize_nl: bool = True, logits_processor: Optional[LogitsProcessorList] = None,
                 stopping_criteria: Optional[StoppingCriteriaList] = None,
                 grammar: Optional[LlamaGrammar] = None) -> Iterator[int]:
        """Tokens sampled after `tokens`, one at a time, until the caller stops iterating (or a
        stopping criterion says so). The context keeps the longest prefix it shares with `tokens`.
        logits_processor and stopping_criteria get numpy arrays; `grammar` cannot be combined with
        logits_processor here (the constrained path samples inside libphi4)."""
        if grammar is not None:
            raise ValueError("generate() with grammar is not supported; use create_completion(grammar=...)")
        self._warn_tfs(tfs_z)
        np = _np() if (logits_processor or stopping_criteria) else None
        sampler = N.c_void_p()
        s = sampling_params(**self._sampling(temp, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                                             presence_penalty, mirostat_mode, mirostat_tau, mirostat_eta, self._seed))
        check(N.lib.phi4_sampler_create(ctypes.byref(s), ctypes.byref(sampler)))
        try:
            tokens = list(tokens)
            if not tokens:
                raise ValueError("generate() needs at least one token")
            if reset:
                self._prefill(tokens)
                pending = tokens[len(self._tokens):]
            else:
                pending = tokens
            n_vocab = self.n_vocab()
            while True:
                self.eval(pending)
                raw = self._ctx.logits()
                row: Any = raw
                if np is not None:
                    logits = np.frombuffer(raw, dtype=np.float32).copy()
                    ids = np.array(self._tokens, dtype=np.intc)
                    if stopping_criteria is not None and len(self._tokens) > len(tokens) and stopping_criteria(ids, logits):
                        return
                    if logits_processor is not None:
                        logits = np.ascontiguousarray(logits_processor(ids, logits), dtype=np.float32)
                    row = logits.ctypes.data_as(ctypes.POINTER(N.c_float))
                tok = N.c_int32(0)
                # llama-cpp-python's penalties see the tokens this call generated, not the prompt.
                produced = self._tokens[len(tokens):]
                check(N.lib.phi4_sample_logits(sampler, row, n_vocab, ids_array(produced), len(produced),
                                               ctypes.byref(tok)))
                yield tok.value
                pending = [tok.value]
        finally:
            N.lib.phi4_sampler_free(sampler)

    # ---- Completions --------------------------------------------------------------------------

    def _sampling(self, temperature: float, top_k: int, top_p: float, min_p: float, typical_p: float, repeat_penalty: float,
                  frequency_penalty: float, presence_penalty: float, mirostat_mode: int, mirostat_tau: float,
                  mirostat_eta: float, seed: Optional[int]) -> Dict[str, Any]:
        """libphi4's sampling options for llama-cpp-python's (temperature < 0: llama.cpp samples the
        plain softmax, no filters)."""
        opts: Dict[str, Any] = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
                                    repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                                    presence_penalty=presence_penalty, mirostat=mirostat_mode,
                                    mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, seed=seed,
                                    penalty_window=self.last_n_tokens_size, penalize_prompt=False)
        if temperature < 0:
            opts.update(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0, mirostat=0)
        return opts

    def _warn_tfs(self, tfs_z: float) -> None:
        if tfs_z != 1.0 and not self._tfs_warned:
            self._tfs_warned = True
            warnings.warn("tfs_z is ignored: llama.cpp removed tail-free sampling (llama-cpp-python ignores it too)",
                          stacklevel=3)

    def _call_seed(self, seed: Optional[int]) -> int:
        # llama-cpp-python: an explicit seed, else one drawn from the current one; either becomes
        # the current seed (so calls without a seed differ from each other, reproducibly).
        self._seed = seed if seed is not None else random.Random(self._seed).randint(0, 2 ** 32)
        return self._seed

    def create_completion(self, prompt: Union[str, List[int]], suffix: Optional[str] = None,
                          max_tokens: Optional[int] = 16, temperature: float = 0.8, top_p: float = 0.95,
                          min_p: float = 0.05, typical_p: float = 1.0, logprobs: Optional[int] = None,
                          echo: bool = False, stop: Optional[Union[str, List[str]]] = [],
                          frequency_penalty: float = 0.0, presence_penalty: float = 0.0, repeat_penalty: float = 1.0,
                          top_k: int = 40, stream: bool = False, seed: Optional[int] = None, tfs_z: float = 1.0,
                          mirostat_mode: int = 0, mirostat_tau: float = 5.0, mirostat_eta: float = 0.1,
                          model: Optional[str] = None, stopping_criteria: Optional[StoppingCriteriaList] = None,
                          logits_processor: Optional[LogitsProcessorList] = None,
                          grammar: Optional[Union[LlamaGrammar, str]] = None,
                          logit_bias: Optional[Dict[int, float]] = None,
                          response_format: Optional[Dict[str, Any]] = None) -> Any:
        """Complete `prompt` (text, whose special-token text is parsed as llama-cpp-python does, or
        ids). Returns llama-cpp-python's completion dict, or with stream=True an iterator of its
        chunks."""
        if suffix is not None:
            raise ValueError("suffix (fill-in-the-middle) is not supported: Phi-4 has no infill tokens")
        if logprobs is not None and not self._logits_all:
            raise ValueError("logprobs is not supported for models created with logits_all=False")
        if echo and logprobs is not None:
            raise ValueError("echo with logprobs is not supported")
        self._warn_tfs(tfs_z)
        prompt_tokens = self.tokenize(prompt.encode("utf-8"), add_bos=True, special=True) if isinstance(prompt, str) \
            else list(prompt)
        if not prompt_tokens:
            prompt_tokens = [self.token_bos() if self.token_bos() >= 0 else self.token_eos()]
        if len(prompt_tokens) >= self._n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt_tokens)}) exceed context window of {self._n_ctx}")
        if max_tokens is None or max_tokens <= 0:
            max_tokens = self._n_ctx - len(prompt_tokens)
        max_tokens = min(max_tokens, self._n_ctx - len(prompt_tokens))
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        stops = [s for s in stops if s]
        kind, constraint = self._constraint(grammar, response_format)
        sampling = self._sampling(temperature, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                                  presence_penalty, mirostat_mode, mirostat_tau, mirostat_eta, self._call_seed(seed))
        meta = dict(id=f"cmpl-{uuid.uuid4()}", created=int(time.time()), model=model or self.model_path)
        if logits_processor is not None or stopping_criteria is not None:
            if kind != N.CONSTRAINT_NONE:
                raise ValueError("logits_processor / stopping_criteria cannot be combined with grammar or "
                                 "response_format in libphi4")
            if logit_bias:
                raise ValueError("logit_bias with logits_processor: add the bias in a logits processor")
            pieces = self._python_loop(prompt_tokens, max_tokens, stops, sampling, logits_processor, stopping_criteria)
        else:
            pieces = self._engine_loop(prompt_tokens, max_tokens, stops, sampling, kind, constraint, logit_bias,
                                       logprobs, len(prompt))
        if stream:
            return self._stream_chunks(pieces, meta, prompt if echo and isinstance(prompt, str) else "")
        text, reason, lp, n_out = "", "length", None, 0
        for piece in pieces:
            if isinstance(piece, tuple):
                reason, lp, n_out = piece
            else:
                text += piece
        if echo:
            text = (prompt if isinstance(prompt, str) else self.detokenize(prompt_tokens).decode("utf-8", "ignore")) + text
        return {"id": meta["id"], "object": "text_completion", "created": meta["created"], "model": meta["model"],
                "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": reason}],
                "usage": {"prompt_tokens": len(prompt_tokens), "completion_tokens": n_out,
                          "total_tokens": len(prompt_tokens) + n_out}}

    #: `create_completion` with the same defaults (16 tokens), as llama-cpp-python's `__call__`.
    __call__ = create_completion

    @staticmethod
    def _constraint(grammar: Optional[Union[LlamaGrammar, str]], response_format: Optional[Dict[str, Any]]) -> tuple:
        """(phi4 constraint type, text) of `grammar` and `response_format` (either spelling)."""
        if grammar is not None and response_format is not None and response_format.get("type") != "text":
            raise ValueError("give grammar or response_format, not both")
        if isinstance(grammar, LlamaGrammar):
            return grammar._kind, grammar._grammar
        if isinstance(grammar, str):
            return N.CONSTRAINT_GRAMMAR, grammar
        if response_format is not None and response_format.get("type") == "json_object" and \
                response_format.get("schema") is not None:
            return N.CONSTRAINT_JSON_SCHEMA, json.dumps(response_format["schema"])
        return constraint_of(response_format, None, None, None)

    def _engine_loop(self, prompt_tokens: List[int], max_tokens: int, stops: List[str], sampling: Dict[str, Any],
                     kind: int, constraint: Optional[str], logit_bias: Optional[Dict[int, float]],
                     logprobs: Optional[int], prompt_length: int) -> Iterator[Any]:
        """Text pieces generated inside libphi4 (sampling, constraint and stop strings there), then
        (finish_reason, logprobs dict or None, completion token count)."""
        self._prefill(prompt_tokens)
        params, keep = _generate_params(max_tokens, sampling, stops, kind, constraint, logit_bias, logprobs)
        rest = prompt_tokens[len(self._tokens):]
        check(N.lib.phi4_generation_start(self._ctx._h, ids_array(rest), len(rest), ctypes.byref(params)))
        del keep
        from .context import Stream
        s = Stream(self._ctx, len(rest))
        text = ""
        try:
            for piece in s:
                text += piece
                yield piece
        finally:
            s.close()
        self._tokens = self._ctx.tokens()
        self._scores = None
        lp = self._logprobs_dict(s, logprobs, prompt_length) if logprobs is not None else None
        yield (s.finish_reason if s.finish_reason in ("stop", "length") else "stop", lp, s.completion_tokens)

    def _logprobs_dict(self, s: Any, n: int, start: int) -> Dict[str, Any]:
        """llama-cpp-python's completion logprobs: tokens, text_offset (counted from `start`, the
        prompt's length as llama-cpp-python counts it), token_logprobs, top_logprobs."""
        records = s.logprobs()
        tokens, offsets, token_lp, top = [], [], [], []
        offset = start
        for r in records:
            piece = self.detokenize([r["token"]]).decode("utf-8", "ignore")
            tokens.append(piece)
            offsets.append(offset)
            offset += len(piece)
            token_lp.append(r["logprob"])
            alts = {self.detokenize([t]).decode("utf-8", "ignore"): lp for t, lp in r["top_logprobs"][:n]}
            alts[piece] = r["logprob"]
            top.append(alts)
        return {"tokens": tokens, "text_offset": offsets, "token_logprobs": token_lp, "top_logprobs": top}

    def _python_loop(self, prompt_tokens: List[int], max_tokens: int, stops: List[str], sampling: Dict[str, Any],
                     logits_processor: Optional[LogitsProcessorList],
                     stopping_criteria: Optional[StoppingCriteriaList]) -> Iterator[Any]:
        """The same as _engine_loop with Python callables at every step (sampling through
        phi4_sample_logits). Text that may be the start of a stop string is held back."""
        eog = set(self._model.eog_tokens)
        out: List[int] = []
        data = b""
        sent = 0
        reason = "length"
        stopped_by_string = False
        o = sampling
        gen = self.generate(prompt_tokens, top_k=o["top_k"], top_p=o["top_p"], min_p=o["min_p"],
                            typical_p=o["typical_p"], temp=o["temperature"], repeat_penalty=o["repeat_penalty"],
                            frequency_penalty=o["frequency_penalty"], presence_penalty=o["presence_penalty"],
                            mirostat_mode=o["mirostat"], mirostat_tau=o["mirostat_tau"],
                            mirostat_eta=o["mirostat_eta"], logits_processor=logits_processor,
                            stopping_criteria=stopping_criteria)
        try:
            for tok in gen:
                if tok in eog:
                    reason = "stop"
                    break
                out.append(tok)
                data += self._model.tokenizer.token_bytes(tok)
                text = data[:len(data) - _cut(data)].decode("utf-8", "replace")
                hits = [text.index(x) for x in stops if x in text]
                if hits:
                    if min(hits) > sent:
                        yield text[sent:min(hits)]
                    sent = len(text)
                    reason = "stop"
                    stopped_by_string = True
                    break
                hold = max([k for x in stops for k in range(1, len(x)) if text.endswith(x[:k])] or [0])
                if len(text) - hold > sent:
                    yield text[sent:len(text) - hold]
                    sent = len(text) - hold
                if len(out) >= max_tokens:
                    break
            else:
                reason = "stop"  # a stopping criterion ended it
        finally:
            gen.close()
        text = data.decode("utf-8", "replace")
        if not stopped_by_string and len(text) > sent:
            yield text[sent:]
        yield (reason, None, len(out))

    def _stream_chunks(self, pieces: Iterator[Any], meta: Dict[str, Any], echo_text: str) -> Iterator[Dict[str, Any]]:
        def chunk(text: str, reason: Optional[str], lp: Any = None) -> Dict[str, Any]:
            return {"id": meta["id"], "object": "text_completion", "created": meta["created"], "model": meta["model"],
                    "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": reason}]}
        if echo_text:
            yield chunk(echo_text, None)
        for piece in pieces:
            if isinstance(piece, tuple):
                yield chunk("", piece[0])
            elif piece:
                yield chunk(piece, None)

    # ---- Chat ---------------------------------------------------------------------------------

    def create_chat_completion(self, messages: List[Dict[str, Any]], functions: Optional[List[Any]] = None,
                               function_call: Optional[Any] = None, tools: Optional[List[Any]] = None,
                               tool_choice: Optional[Any] = None, temperature: float = 0.2, top_p: float = 0.95,
                               top_k: int = 40, min_p: float = 0.05, typical_p: float = 1.0, stream: bool = False,
                               stop: Optional[Union[str, List[str]]] = [], seed: Optional[int] = None,
                               response_format: Optional[Dict[str, Any]] = None, max_tokens: Optional[int] = None,
                               presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                               repeat_penalty: float = 1.0, tfs_z: float = 1.0, mirostat_mode: int = 0,
                               mirostat_tau: float = 5.0, mirostat_eta: float = 0.1, model: Optional[str] = None,
                               logits_processor: Optional[LogitsProcessorList] = None,
                               grammar: Optional[Union[LlamaGrammar, str]] = None,
                               logit_bias: Optional[Dict[int, float]] = None, logprobs: Optional[bool] = None,
                               top_logprobs: Optional[int] = None) -> Any:
        """A chat completion in the model's own chat template (llama-cpp-python's defaults:
        temperature 0.2, until the end of the text or of the context). `tools` go through libphi4's
        tool calling (its OpenAI mapping); the legacy `functions` raise an error naming them."""
        if functions is not None or function_call is not None:
            raise ValueError("functions / function_call are not supported; use tools")
        if tools:
            return self._chat_with_tools(messages, tools, tool_choice, stream=stream, temperature=temperature,
                                         top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p, stop=stop,
                                         seed=self._call_seed(seed), max_tokens=max_tokens or None,
                                         presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
                                         repeat_penalty=repeat_penalty, mirostat_mode=mirostat_mode,
                                         mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model)
        if logprobs and not self._logits_all:
            raise ValueError("logprobs is not supported for models created with logits_all=False")
        flat = [{"role": m["role"], "content": _content_text(m.get("content"))} for m in messages]
        ids = self._model.tokenizer.chat_template(flat, add_generation_prompt=True)
        result = self.create_completion(ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p, min_p=min_p,
                                        typical_p=typical_p, logprobs=(top_logprobs or 0) if logprobs else None,
                                        stop=stop, frequency_penalty=frequency_penalty,
                                        presence_penalty=presence_penalty, repeat_penalty=repeat_penalty, top_k=top_k,
                                        stream=stream, seed=seed, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
                                        mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
                                        logits_processor=logits_processor, grammar=grammar, logit_bias=logit_bias,
                                        response_format=response_format)
        if stream:
            return _chat_chunks(result)
        c = result["choices"][0]
        return {"id": "chat" + result["id"], "object": "chat.completion", "created": result["created"],
                "model": result["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": c["text"]},
                             "logprobs": _chat_logprobs(c["logprobs"]), "finish_reason": c["finish_reason"]}],
                "usage": result["usage"]}

    def _chat_with_tools(self, messages: List[Dict[str, Any]], tools: List[Any], tool_choice: Any, stream: bool,
                         model: Optional[str], **o: Any) -> Any:
        request: Dict[str, Any] = {"messages": messages, "tools": tools, "stream": stream,
                                   "temperature": max(0.0, o["temperature"]), "top_p": o["top_p"], "top_k": o["top_k"],
                                   "min_p": o["min_p"], "typical_p": o["typical_p"], "seed": o["seed"],
                                   "presence_penalty": o["presence_penalty"],
                                   "frequency_penalty": o["frequency_penalty"], "repeat_penalty": o["repeat_penalty"],
                                   "mirostat_mode": o["mirostat_mode"], "mirostat_tau": o["mirostat_tau"],
                                   "mirostat_eta": o["mirostat_eta"], "model": model or self.model_path}
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
        if o["stop"]:
            request["stop"] = o["stop"]
        if o["max_tokens"]:
            request["max_tokens"] = o["max_tokens"]
        from . import responses
        responses.start(self._ctx, responses.CHAT, request)  # the mapping reuses the context's prefix itself
        self._scores = None

        def sync() -> None:
            self._tokens = self._ctx.tokens()
        out = responses.bodies(self._ctx, sync)
        return out if stream else next(iter(list(out)))

    # ---- Embeddings ---------------------------------------------------------------------------

    def embed(self, input: Union[str, List[str]], normalize: bool = False, truncate: bool = True,
              return_count: bool = False) -> Any:
        """Embeddings (needs embedding=True): with the model's pooling (none for Phi-4, as in
        llama.cpp: one vector per token) or the constructor's pooling_type. Every input goes
        through libphi4's batched forward pass in one call."""
        if not self._embedding:
            raise RuntimeError("Llama model must be created with embedding=True to call this method")
        inputs = [input] if isinstance(input, str) else list(input)
        ids = []
        for text in inputs:
            t = self.tokenize(text.encode("utf-8"))
            if truncate:
                t = t[:self.n_batch]
            if len(t) > self.n_batch:
                raise ValueError(f"Requested tokens ({len(t)}) exceed batch size of {self.n_batch}")
            ids.append(t)
        pooling = _POOLING_NAMES[self.pooling_type()]
        data = self._ctx.embed(ids, pooling=pooling, normalize=normalize) if ids else []
        total = sum(len(t) for t in ids)
        output = data[0] if isinstance(input, str) else data
        return (output, total) if return_count else output

    def create_embedding(self, input: Union[str, List[str]], model: Optional[str] = None) -> Dict[str, Any]:
        """OpenAI's embeddings response over `embed`."""
        embeds, total = self.embed(input, return_count=True)
        if isinstance(input, str):
            embeds = [embeds]
        return {"object": "list",
                "data": [{"object": "embedding", "embedding": e, "index": i} for i, e in enumerate(embeds)],
                "model": model or self.model_path,
                "usage": {"prompt_tokens": total, "total_tokens": total}}

    # ---- State --------------------------------------------------------------------------------

    def save_state(self) -> LlamaState:
        """The context's tokens and KV cache."""
        data = self._ctx.save_state()
        return LlamaState(list(self._tokens), data, len(data), self._seed)

    def load_state(self, state: LlamaState) -> None:
        """Restore a `save_state` result (same model)."""
        self._ctx.load_state(state.llama_state)
        self._tokens = list(state.input_ids)
        self._scores = None
        self._seed = state.seed

    @classmethod
    def from_pretrained(cls, repo_id: str, filename: Optional[str], additional_files: Optional[List[str]] = None,
                        local_dir: Optional[Union[str, os.PathLike]] = None, local_dir_use_symlinks: Any = "auto",
                        cache_dir: Optional[Union[str, os.PathLike]] = None, **kwargs: Any) -> "Llama":
        """A model from the Hugging Face Hub (`filename` a glob such as "*Q4_K_M.gguf"; split
        shards come along); needs huggingface_hub (`pip install "phi4[hub]"`). Other keywords go to
        the constructor."""
        if additional_files:
            raise ValueError("additional_files is not supported (split GGUF shards are fetched by themselves)")
        if local_dir is not None:
            raise ValueError("local_dir is not supported; files go to the Hugging Face cache (cache_dir=)")
        from .model import hub_download
        return cls(model_path=hub_download(repo_id, filename, cache_dir=cache_dir), **kwargs)


def _cut(data: bytes) -> int:
    """How many bytes at the end of `data` are an unfinished UTF-8 character."""
    for k in range(1, min(4, len(data)) + 1):
        b = data[-k]
        if b & 0xC0 == 0x80:
            continue
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return k if need > k else 0
    return 0


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ValueError("message content must be a string or a list of text parts")


def _chat_logprobs(lp: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """llama-cpp-python's conversion of completion logprobs to chat logprobs."""
    if lp is None:
        return None
    return {"content": [{"token": tok, "bytes": None, "logprob": logprob,
                         "top_logprobs": [{"token": t, "logprob": l, "bytes": None} for t, l in top.items()]}
                        for tok, logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"])],
            "refusal": None}


def _chat_chunks(chunks: Iterator[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    """llama-cpp-python's conversion of completion chunks to chat chunks."""
    for i, chunk in enumerate(chunks):
        head = {"id": "chat" + chunk["id"], "model": chunk["model"], "created": chunk["created"],
                "object": "chat.completion.chunk"}
        if i == 0:
            yield dict(head, choices=[{"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                                       "finish_reason": None}])
        c = chunk["choices"][0]
        yield dict(head, choices=[{"index": 0, "delta": {"content": c["text"]} if c["finish_reason"] is None else {},
                                   "logprobs": _chat_logprobs(c["logprobs"]), "finish_reason": c["finish_reason"]}])


def _generate_params(max_tokens: int, sampling: Dict[str, Any], stops: List[str], kind: int,
                     constraint: Optional[str], logit_bias: Optional[Dict[int, float]],
                     logprobs: Optional[int]) -> tuple:
    """phi4_generate_params (and the objects it points to) for a completion."""
    from .context import generate_params
    by_kind = {N.CONSTRAINT_GRAMMAR: {"grammar": constraint}, N.CONSTRAINT_JSON_SCHEMA: {"json_schema": constraint},
               N.CONSTRAINT_JSON_OBJECT: {"response_format": {"type": "json_object"}}}
    p, keep = generate_params(max_tokens=max_tokens, stop=stops or None, top_logprobs=logprobs, **by_kind.get(kind, {}), **{
        k: sampling[k] for k in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
                                 "frequency_penalty", "seed", "typical_p", "mirostat", "mirostat_tau", "mirostat_eta",
                                 "penalty_window", "penalize_prompt")})
    if logit_bias:
        s = p.sampling.contents
        ids = (N.c_int32 * len(logit_bias))(*[int(k) for k in logit_bias])
        values = (N.c_float * len(logit_bias))(*[float(v) for v in logit_bias.values()])
        keep += [ids, values]
        s.logit_bias_tokens, s.logit_bias_values, s.n_logit_bias = ids, values, len(logit_bias)
    return p, keep
