"""Contexts (one conversation's KV cache) and the streams of text a generation yields."""
from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _native as N
from .errors import InvalidArgument, check
from .errors import ids as ids_array


def generate_params(max_tokens: Optional[int] = None, temperature: Optional[float] = None, top_k: Optional[int] = None,
                    top_p: Optional[float] = None, min_p: Optional[float] = None,
                    repeat_penalty: Optional[float] = None, presence_penalty: Optional[float] = None,
                    frequency_penalty: Optional[float] = None, seed: Optional[int] = None,
                    stop: Optional[Union[str, Sequence[str]]] = None, top_logprobs: Optional[int] = None,
                    lookup: Optional[int] = None, response_format: Optional[Dict[str, Any]] = None,
                    json_schema: Optional[Union[str, Dict[str, Any]]] = None, grammar: Optional[str] = None,
                    regex: Optional[str] = None, typical_p: Optional[float] = None, mirostat: Optional[int] = None,
                    mirostat_tau: Optional[float] = None, mirostat_eta: Optional[float] = None,
                    penalty_window: Optional[int] = None, penalize_prompt: Optional[bool] = None) -> tuple:
    """phi4_generate_params for the given options; None keeps the library's default. Returns the
    struct and the objects it points to (keep them alive until the call that reads them returns)."""
    p = N.defaults(N.GenerateParams)
    kind, text = constraint_of(response_format, json_schema, grammar, regex)
    if max_tokens is not None:
        p.max_tokens = int(max_tokens)
    if top_logprobs is not None:
        p.top_logprobs = int(top_logprobs)
    if lookup is not None:
        p.lookup = int(lookup)
    s = sampling_params(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty,
                        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, seed=seed,
                        typical_p=typical_p, mirostat=mirostat, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta,
                        penalty_window=penalty_window, penalize_prompt=penalize_prompt)
    keep: list = [s]
    if kind != N.CONSTRAINT_NONE:
        data = (text or "").encode("utf-8")
        keep.append(data)
        p.constraint_type, p.constraint, p.constraint_len = kind, data, len(data)
    p.sampling = ctypes.pointer(s)
    if stop:
        if isinstance(stop, str):
            stop = [stop]
        encoded = [x.encode("utf-8") for x in stop]
        arr = (N.c_char_p * len(encoded))(*encoded)
        keep += [encoded, arr]
        p.stop_strings = arr
        p.n_stop_strings = len(encoded)
    return p, keep


def sampling_params(temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                    min_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
                    presence_penalty: Optional[float] = None, frequency_penalty: Optional[float] = None,
                    seed: Optional[int] = None, typical_p: Optional[float] = None, mirostat: Optional[int] = None,
                    mirostat_tau: Optional[float] = None, mirostat_eta: Optional[float] = None,
                    penalty_window: Optional[int] = None, penalize_prompt: Optional[bool] = None) -> Any:
    """phi4_sampling_params for the given options (None: the library's default)."""
    s = N.defaults(N.SamplingParams)
    for field, value, kind in (("temperature", temperature, float), ("top_k", top_k, int), ("top_p", top_p, float),
                               ("min_p", min_p, float), ("repetition_penalty", repeat_penalty, float),
                               ("presence_penalty", presence_penalty, float),
                               ("frequency_penalty", frequency_penalty, float), ("typical_p", typical_p, float),
                               ("mirostat", mirostat, int), ("mirostat_tau", mirostat_tau, float),
                               ("mirostat_eta", mirostat_eta, float), ("penalty_window", penalty_window, int),
                               ("penalize_prompt", penalize_prompt, int)):
        if value is not None:
            setattr(s, field, kind(value))
    if seed is not None:
        s.use_seed, s.seed = 1, int(seed) & 0xFFFFFFFFFFFFFFFF
    return s


def constraint_of(response_format: Optional[Dict[str, Any]], json_schema: Any, grammar: Optional[str],
                  regex: Optional[str]) -> tuple:
    """(phi4 constraint type, text) of the constraint options; at most one may be given."""
    given = [x for x in (response_format, json_schema, grammar, regex) if x is not None]
    if len(given) > 1:
        raise InvalidArgument("give one of response_format, json_schema, grammar and regex")
    if grammar is not None:
        return N.CONSTRAINT_GRAMMAR, grammar
    if regex is not None:
        return N.CONSTRAINT_REGEX, regex
    if json_schema is not None:
        return N.CONSTRAINT_JSON_SCHEMA, json_schema if isinstance(json_schema, str) else json.dumps(json_schema)
    if response_format is not None:
        kind = response_format.get("type")
        if kind == "text":
            return N.CONSTRAINT_NONE, None
        if kind == "json_object":
            return N.CONSTRAINT_JSON_OBJECT, None
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if not isinstance(schema, (dict, bool)):
                raise InvalidArgument('response_format json_schema needs {"name": ..., "schema": {...}}')
            return N.CONSTRAINT_JSON_SCHEMA, json.dumps(schema)
        raise InvalidArgument("response_format type must be text, json_object or json_schema")
    return N.CONSTRAINT_NONE, None


class Context:
    """One conversation's KV cache on a model. Use it from one thread at a time;
    `cancel()` may be called from any thread."""

    def __init__(self, model: "Model", n_ctx: int = 0, n_batch: int = 512, threads: Optional[int] = None,
                 kv_type: Optional[str] = None):
        """`kv_type`: None (f16 for quantized weights, f32 otherwise), "f32", "f16" or "q8_0" (about
        half the memory of f16)."""
        self.model = model
        p = N.defaults(N.ContextParams)
        p.n_ctx, p.n_batch, p.n_threads = int(n_ctx), int(n_batch), int(threads or 0)
        if kv_type not in N.KV_TYPES:
            raise InvalidArgument(f"kv_type must be one of {sorted(k for k in N.KV_TYPES if k)}")
        p.kv_type = N.KV_TYPES[kv_type]
        h = N.c_void_p()
        check(N.lib.phi4_context_create(model._h, ctypes.byref(p), ctypes.byref(h)))
        self._h = h.value

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            N.lib.phi4_context_free(self._h)
            self._h = None

    def __len__(self) -> int:
        """The number of tokens in the context."""
        return N.lib.phi4_context_token_count(self._h)

    def tokens(self) -> List[int]:
        """The context's tokens, in order."""
        n = N.c_size_t(0)
        cap = max(1, len(self))
        while True:
            buf = (N.c_int32 * cap)()
            st = N.lib.phi4_context_tokens(self._h, buf, cap, ctypes.byref(n))
            if st == N.BUFFER_TOO_SMALL:
                cap = n.value
                continue
            check(st)
            return list(buf[:n.value])

    @property
    def capacity(self) -> int:
        """Positions the context's KV cache holds (n_ctx)."""
        return N.lib.phi4_context_capacity(self._h)

    def reset(self) -> None:
        """Forget every token."""
        check(N.lib.phi4_context_reset(self._h))

    def truncate(self, n: int) -> None:
        """Keep the first `n` tokens."""
        check(N.lib.phi4_context_truncate(self._h, int(n)))

    def eval(self, ids: Sequence[int], all_logits: bool = False) -> None:
        """Append `ids` to the context and compute logits (of the last position, or all)."""
        arr = ids_array(ids)
        check(N.lib.phi4_eval(self._h, arr, len(ids), int(all_logits)))

    def logits(self, row: int = -1) -> "ctypes.Array[ctypes.c_float]":
        """The logits of a row of the last eval, as a float array (supports the buffer protocol:
        `numpy.frombuffer(ctx.logits(), dtype=numpy.float32)`)."""
        buf = (N.c_float * self.model.vocab_size)()
        check(N.lib.phi4_get_logits(self._h, int(row), buf, self.model.vocab_size, None))
        return buf

    def save_state(self) -> bytes:
        """The context's tokens and KV cache (versioned, checksummed, tied to the model)."""
        n = N.c_size_t(0)
        st = N.lib.phi4_context_save_state(self._h, None, 0, ctypes.byref(n))
        if st != N.BUFFER_TOO_SMALL:
            check(st)
        buf = ctypes.create_string_buffer(n.value)
        check(N.lib.phi4_context_save_state(self._h, buf, n.value, ctypes.byref(n)))
        return buf.raw[:n.value]

    def load_state(self, state: bytes) -> None:
        """Restore a state from save_state() (same model); generation then continues exactly as
        it would have in the saved context."""
        check(N.lib.phi4_context_load_state(self._h, state, len(state)))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """save_state() into a file."""
        check(N.lib.phi4_context_save_file(self._h, os.fsencode(path)))

    def load(self, path: Union[str, os.PathLike]) -> None:
        """load_state() from a file."""
        check(N.lib.phi4_context_load_file(self._h, os.fsencode(path)))

    def reuse_prefix(self, ids: Sequence[int]) -> int:
        """Keep the longest prefix of the context that `ids` starts with (at least one id is left
        to evaluate); returns how many ids are already in the context."""
        kept = N.c_size_t(0)
        check(N.lib.phi4_context_reuse_prefix(self._h, ids_array(ids), len(ids), ctypes.byref(kept)))
        return kept.value

    def embed(self, inputs: Sequence[Sequence[int]], pooling: str = "mean", normalize: bool = False) -> List[Any]:
        """Embeddings of token sequences (phi4_embed): per input `hidden_size` floats, or with
        pooling "none" one list of `hidden_size` floats per token. The context's own tokens are not
        touched; the inputs go through the batched forward pass together."""
        if pooling not in N.POOLING:
            raise InvalidArgument(f"pooling must be one of {sorted(N.POOLING)}")
        inputs = [list(x) for x in inputs]
        if not inputs:
            return []
        flat = ids_array([t for x in inputs for t in x])
        lengths = (N.c_size_t * len(inputs))(*[len(x) for x in inputs])
        d = self.model._info.hidden_size
        need = d * (sum(len(x) for x in inputs) if pooling == "none" else len(inputs))
        out = (N.c_float * need)()
        n = N.c_size_t(0)
        check(N.lib.phi4_embed(self._h, flat, lengths, len(inputs), N.POOLING[pooling], int(bool(normalize)), out, need,
                               ctypes.byref(n)))
        values = list(out)
        if pooling != "none":
            return [values[i * d:(i + 1) * d] for i in range(len(inputs))]
        result, k = [], 0
        for x in inputs:
            result.append([values[(k + j) * d:(k + j + 1) * d] for j in range(len(x))])
            k += len(x)
        return result

    def cancel(self) -> None:
        """Ask a running evaluation or generation on this context to stop soon (any thread)."""
        N.lib.phi4_cancel(self._h)

    def stream(self, prompt: Sequence[int], max_tokens: Optional[int] = None, temperature: Optional[float] = None,
               top_k: Optional[int] = None, top_p: Optional[float] = None, min_p: Optional[float] = None,
               repeat_penalty: Optional[float] = None, presence_penalty: Optional[float] = None,
               frequency_penalty: Optional[float] = None, seed: Optional[int] = None,
               stop: Optional[Sequence[str]] = None, top_logprobs: Optional[int] = None,
               lookup: Optional[int] = None, response_format: Optional[Dict[str, Any]] = None,
               json_schema: Optional[Union[str, Dict[str, Any]]] = None, grammar: Optional[str] = None,
               regex: Optional[str] = None, typical_p: Optional[float] = None, mirostat: Optional[int] = None,
               mirostat_tau: Optional[float] = None, mirostat_eta: Optional[float] = None) -> "Stream":
        """Start a generation after `prompt` (ids appended to the context); iterate for text pieces.
        An option left at None takes the library's default (phi4_generate_params_init and
        phi4_sampling_params_init: 256 tokens, temperature 0.8, top_k 40, top_p 0.95, min_p 0.05).
        typical_p, mirostat (0, 1 or 2), mirostat_tau and mirostat_eta are llama.cpp's samplers.
        With `top_logprobs` (0…20), `Stream.logprobs()` gives each generated token's log-probability."""
        params, keep = generate_params(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                       min_p=min_p, repeat_penalty=repeat_penalty, presence_penalty=presence_penalty,
                                       frequency_penalty=frequency_penalty, seed=seed, stop=stop,
                                       top_logprobs=top_logprobs, lookup=lookup, response_format=response_format,
                                       json_schema=json_schema, grammar=grammar, regex=regex, typical_p=typical_p,
                                       mirostat=mirostat, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta)
        arr = ids_array(prompt)
        check(N.lib.phi4_generation_start(self._h, arr, len(prompt), ctypes.byref(params)))
        del keep  # the library copied the sampling params and stop strings
        return Stream(self, len(prompt))


class Stream:
    """An iterator over generated text pieces (whole UTF-8 characters). Breaking out of the loop
    (or an exception such as KeyboardInterrupt between pieces) ends the generation."""

    def __init__(self, ctx: Context, prompt_tokens: int, on_close: Optional[Callable[[], None]] = None):
        self.ctx = ctx
        self._on_close = on_close
        self.prompt_tokens = prompt_tokens
        self.finish_reason: Optional[str] = None
        self.completion_tokens = 0
        self._buf = ctypes.create_string_buffer(256)
        self._done = False
        self._start = len(ctx)

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        n, tok, reason = N.c_size_t(0), N.c_int32(0), N.c_int32(0)
        try:
            while True:
                st = N.lib.phi4_generation_next(self.ctx._h, self._buf, len(self._buf), ctypes.byref(n), ctypes.byref(tok),
                                               ctypes.byref(reason))
                if st == N.BUFFER_TOO_SMALL:
                    self._buf = ctypes.create_string_buffer(n.value)
                    continue
                check(st)
                break
        except BaseException:
            self.close()
            raise
        if n.value == 0 and reason.value != 0:
            self.finish_reason = N.STOP_NAMES.get(reason.value, "stop")
            self.close()
            raise StopIteration
        return self._buf.raw[:n.value].decode("utf-8")

    def logprobs(self) -> List[Dict[str, Any]]:
        """For each token generated so far (with `top_logprobs` set): {"token": id, "logprob": float,
        "top_logprobs": [(id, logprob), ...]} — log-softmax of the model's raw logits."""
        n = N.lib.phi4_generation_token_count(self.ctx._h)
        out: List[Dict[str, Any]] = []
        one, top, k = N.TokenLogprob(), (N.TokenLogprob * 20)(), N.c_size_t(0)
        for i in range(max(0, n)):
            check(N.lib.phi4_generation_logprob(self.ctx._h, i, ctypes.byref(one), top, 20, ctypes.byref(k)))
            out.append({"token": one.token, "logprob": one.logprob,
                        "top_logprobs": [(top[j].token, top[j].logprob) for j in range(k.value)]})
        return out

    def lookup_counts(self) -> tuple:
        """Prompt lookup (`lookup=N`): (draft tokens proposed, draft tokens accepted) so far; each
        accepted one is a token that needed no pass over the weights of its own."""
        proposed, accepted = N.c_int32(0), N.c_int32(0)
        check(N.lib.phi4_generation_lookup_counts(self.ctx._h, ctypes.byref(proposed), ctypes.byref(accepted)))
        return proposed.value, accepted.value

    def close(self) -> None:
        """End the generation (safe to call twice)."""
        if not self._done:
            self._done = True
            N.lib.phi4_generation_finish(self.ctx._h)
            if self.finish_reason is None:
                self.finish_reason = "cancelled"
            # The tokens the generation produced, as the library counts them.
            self.completion_tokens = max(0, N.lib.phi4_generation_token_count(self.ctx._h))
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
