"""Phi-4 inference on CPUs: the Python binding of libphi4.

A thin layer over the C ABI (include/phi4.h) through ctypes: every call into the library
releases the GIL, so other Python threads run while the model loads, evaluates or generates.

    import phi4
    model = phi4.Model("phi-4")                         # HF directory or .gguf file
    print(model.generate("Hello", max_tokens=16))
    for piece in model.chat([{"role": "user", "content": "Hi!"}], stream=True):
        print(piece, end="")
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

__all__ = ["Model", "Tokenizer", "Context", "Phi4Error", "InvalidArgument", "ModelFileError",
           "ContextFullError", "Cancelled", "ContextBusy", "version"]

# ---------------------------------------------------------------------------------------------
# The library


def _load_library() -> ctypes.CDLL:
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("PHI4_LIBRARY", ""), os.path.join(here, "lib", "libphi4.so.0"),
                  os.path.join(here, "lib", "libphi4.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return ctypes.CDLL(path)
    return ctypes.CDLL("libphi4.so.0")


_lib = _load_library()

c_int32, c_size_t, c_float, c_uint64, c_char_p, c_void_p = (ctypes.c_int32, ctypes.c_size_t, ctypes.c_float,
                                                            ctypes.c_uint64, ctypes.c_char_p, ctypes.c_void_p)
P_int32 = ctypes.POINTER(c_int32)
P_size = ctypes.POINTER(c_size_t)


class _ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("weight_format", c_int32), ("check_memory", c_int32)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("vocab_size", c_int32), ("context_length", c_int32),
                ("layer_count", c_int32), ("hidden_size", c_int32), ("head_count", c_int32),
                ("kv_head_count", c_int32), ("bos_token", c_int32), ("eos_token", c_int32), ("pad_token", c_int32),
                ("parameter_count", ctypes.c_int64), ("weight_bytes", ctypes.c_int64)]


class _ContextParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_ctx", c_int32), ("n_batch", c_int32), ("n_threads", c_int32),
                ("kv_type", c_int32)]


class _SamplingParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("temperature", c_float), ("top_k", c_int32), ("top_p", c_float),
                ("min_p", c_float), ("repetition_penalty", c_float), ("presence_penalty", c_float),
                ("frequency_penalty", c_float), ("penalty_window", c_int32), ("use_seed", c_int32),
                ("seed", c_uint64), ("logit_bias_tokens", P_int32), ("logit_bias_values", ctypes.POINTER(c_float)),
                ("n_logit_bias", c_size_t)]


class _GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("max_tokens", c_int32), ("sampling", _SamplingParams),
                ("stop_strings", ctypes.POINTER(c_char_p)), ("n_stop_strings", c_size_t), ("parse_special", c_int32),
                ("top_logprobs", c_int32), ("lookup", c_int32)]


class _TokenLogprob(ctypes.Structure):
    _fields_ = [("token", c_int32), ("logprob", c_float)]


class _ChatMessage(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


def _sig(name: str, res: Any, *args: Any) -> None:
    f = getattr(_lib, name)
    f.restype = res
    f.argtypes = list(args)


_sig("phi4_version", c_char_p)
_sig("phi4_last_error", c_char_p)
_sig("phi4_model_default_params", _ModelParams)
_sig("phi4_model_load", c_int32, c_char_p, ctypes.POINTER(_ModelParams), ctypes.POINTER(c_void_p))
_sig("phi4_model_free", None, c_void_p)
_sig("phi4_model_get_info", c_int32, c_void_p, ctypes.POINTER(_ModelInfo))
_sig("phi4_model_eog_tokens", c_int32, c_void_p, P_int32, c_size_t, P_size)
_sig("phi4_model_tokenizer", c_void_p, c_void_p)
_sig("phi4_tokenizer_load", c_int32, c_char_p, ctypes.POINTER(c_void_p))
_sig("phi4_tokenizer_free", None, c_void_p)
_sig("phi4_tokenize", c_int32, c_void_p, c_char_p, c_size_t, c_int32, P_int32, c_size_t, P_size)
_sig("phi4_detokenize", c_int32, c_void_p, P_int32, c_size_t, ctypes.c_char_p, c_size_t, P_size)
_sig("phi4_token_lookup", c_int32, c_void_p, c_char_p, P_int32)
_sig("phi4_chat_template", c_int32, c_void_p, ctypes.POINTER(_ChatMessage), c_size_t, c_int32, P_int32, c_size_t, P_size)
_sig("phi4_chat_template_fit", c_int32, c_void_p, ctypes.POINTER(_ChatMessage), c_size_t, c_int32, c_size_t, P_int32,
     c_size_t, P_size, P_size)
_sig("phi4_context_default_params", _ContextParams)
_sig("phi4_context_create", c_int32, c_void_p, ctypes.POINTER(_ContextParams), ctypes.POINTER(c_void_p))
_sig("phi4_context_free", None, c_void_p)
_sig("phi4_context_reset", c_int32, c_void_p)
_sig("phi4_context_truncate", c_int32, c_void_p, c_int32)
_sig("phi4_context_length", c_int32, c_void_p)
_sig("phi4_context_capacity", c_int32, c_void_p)
_sig("phi4_eval", c_int32, c_void_p, P_int32, c_size_t, c_int32)
_sig("phi4_get_logits", c_int32, c_void_p, c_int32, ctypes.POINTER(c_float), c_size_t, P_size)
_sig("phi4_generate_default_params", _GenerateParams)
_sig("phi4_generation_start", c_int32, c_void_p, P_int32, c_size_t, ctypes.POINTER(_GenerateParams))
_sig("phi4_generation_next", c_int32, c_void_p, ctypes.c_char_p, c_size_t, P_size, P_int32, P_int32)
_sig("phi4_generation_finish", c_int32, c_void_p)
_sig("phi4_cancel", c_int32, c_void_p)
_sig("phi4_generation_token_count", c_int32, c_void_p)
_sig("phi4_generation_lookup_counts", c_int32, c_void_p, P_int32, P_int32)
_sig("phi4_context_save_state", c_int32, c_void_p, c_void_p, c_size_t, P_size)
_sig("phi4_context_load_state", c_int32, c_void_p, c_void_p, c_size_t)
_sig("phi4_context_save_file", c_int32, c_void_p, c_char_p)
_sig("phi4_context_load_file", c_int32, c_void_p, c_char_p)
_sig("phi4_context_reuse_prefix", c_int32, c_void_p, P_int32, c_size_t, P_size)
_sig("phi4_generation_logprob", c_int32, c_void_p, c_size_t, ctypes.POINTER(_TokenLogprob), ctypes.POINTER(_TokenLogprob),
     c_size_t, P_size)
_sig("phi4_token_to_piece", c_int32, c_void_p, c_int32, ctypes.c_char_p, c_size_t, P_size)

_OK, _INVALID_ARGUMENT, _INVALID_HANDLE, _IO, _INVALID_MODEL, _UNSUPPORTED, _OOM, _TOO_SMALL, _CONTEXT_FULL, \
    _CANCELLED, _BUSY = range(11)
_STOP_NAMES = {1: "stop", 2: "stop", 3: "length", 4: "length", 5: "cancelled"}
_WEIGHTS = {None: 0, "f32": 0, "q8_0": 1, "q4_0": 2, "q4_0-mixed": 3}
_KV_TYPES = {None: 0, "f32": 1, "f16": 2, "q8_0": 3}


def version() -> str:
    """The library's version."""
    return _lib.phi4_version().decode()


# ---------------------------------------------------------------------------------------------
# Errors


class Phi4Error(Exception):
    """An error reported by libphi4 (`status` is the phi4_status code)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class InvalidArgument(Phi4Error, ValueError):
    """A bad argument: out-of-range token id, invalid UTF-8, bad sampling value…"""


class ModelFileError(Phi4Error, OSError):
    """A model file that cannot be read, is malformed, or describes an unsupported model."""


class ContextFullError(Phi4Error):
    """The tokens do not fit in the context."""


class Cancelled(Phi4Error):
    """The call was cancelled."""


class ContextBusy(Phi4Error):
    """Another thread is using the same context (a context is used by one thread at a time)."""


def _check(status: int) -> None:
    if status == _OK:
        return
    message = (_lib.phi4_last_error() or b"").decode("utf-8", "replace")
    cls = {_INVALID_ARGUMENT: InvalidArgument, _IO: ModelFileError, _INVALID_MODEL: ModelFileError,
           _UNSUPPORTED: ModelFileError, _CONTEXT_FULL: ContextFullError, _CANCELLED: Cancelled,
           _BUSY: ContextBusy}.get(status, Phi4Error)
    raise cls(message, status)


def _ids(values: Sequence[int]) -> "ctypes.Array[ctypes.c_int32]":
    try:
        return (c_int32 * len(values))(*[int(v) for v in values])
    except (TypeError, OverflowError) as e:
        raise InvalidArgument(f"token ids must be 32-bit integers: {e}") from None


# ---------------------------------------------------------------------------------------------
# Tokenizer


class Tokenizer:
    """Phi-4's tokenizer alone (no weights are loaded): a model directory, tokenizer.json or .tiktoken file."""

    def __init__(self, path: Union[str, os.PathLike], _handle: Optional[int] = None, _owner: Any = None):
        self._owner = _owner
        if _handle is not None:
            self._h = _handle
            self._owned = False
            return
        h = c_void_p()
        _check(_lib.phi4_tokenizer_load(os.fsencode(path), ctypes.byref(h)))
        self._h = h.value
        self._owned = True

    def __del__(self) -> None:
        if getattr(self, "_owned", False) and self._h:
            _lib.phi4_tokenizer_free(self._h)
            self._h = None

    def tokenize(self, text: str, special: bool = False) -> List[int]:
        """Token ids of `text`; with `special`, text such as "<|im_end|>" becomes its special id."""
        data = text.encode("utf-8", "surrogatepass")
        n = c_size_t(0)
        cap = len(data) + 8
        while True:
            buf = (c_int32 * cap)()
            st = _lib.phi4_tokenize(self._h, data, len(data), int(special), buf, cap, ctypes.byref(n))
            if st == _TOO_SMALL:
                cap = n.value
                continue
            _check(st)
            return list(buf[:n.value])

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of `ids` (a character cut at the end becomes U+FFFD)."""
        arr = _ids(ids)
        n = c_size_t(0)
        cap = len(ids) * 8 + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            st = _lib.phi4_detokenize(self._h, arr, len(ids), buf, cap, ctypes.byref(n))
            if st == _TOO_SMALL:
                cap = n.value + 1
                continue
            _check(st)
            return buf.raw[:n.value].decode("utf-8")

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (possibly part of a UTF-8 character)."""
        buf = ctypes.create_string_buffer(256)
        n = c_size_t(0)
        _check(_lib.phi4_token_to_piece(self._h, int(token), buf, 256, ctypes.byref(n)))
        return buf.raw[:n.value]

    def token_id(self, special_text: str) -> int:
        """The id of a special token, e.g. "<|im_end|>"."""
        out = c_int32()
        _check(_lib.phi4_token_lookup(self._h, special_text.encode(), ctypes.byref(out)))
        return out.value

    def chat_template(self, messages: Sequence[Dict[str, str]], add_generation_prompt: bool = True,
                      budget: Optional[int] = None) -> List[int]:
        """Phi-4's chat prompt as ids; message contents are never parsed for special tokens.
        With `budget`, the long-chat policy applies: the oldest messages after a leading system
        message are dropped (a user message with its reply) until the prompt fits in `budget`
        tokens; `self.last_dropped` says how many were dropped."""
        keep = []
        arr = (_ChatMessage * len(messages))()
        for i, m in enumerate(messages):
            try:
                role, content = m["role"].encode(), m["content"].encode("utf-8", "surrogatepass")
            except (KeyError, TypeError, AttributeError):
                raise InvalidArgument("messages are dicts with string 'role' and 'content'") from None
            keep += [role, content]
            arr[i] = _ChatMessage(role, content)
        n = c_size_t(0)
        cap = 256
        while True:
            buf = (c_int32 * cap)()
            if budget is None:
                st = _lib.phi4_chat_template(self._h, arr, len(messages), int(add_generation_prompt), buf, cap,
                                             ctypes.byref(n))
            else:
                dropped = c_size_t(0)
                st = _lib.phi4_chat_template_fit(self._h, arr, len(messages), int(add_generation_prompt), int(budget), buf,
                                                 cap, ctypes.byref(n), ctypes.byref(dropped))
                self.last_dropped = dropped.value
            if st == _TOO_SMALL:
                cap = n.value
                continue
            _check(st)
            return list(buf[:n.value])


# ---------------------------------------------------------------------------------------------
# Context


def _generate_params(max_tokens: int, temperature: float, top_k: int, top_p: float, min_p: float,
                     repeat_penalty: float, presence_penalty: float, frequency_penalty: float,
                     seed: Optional[int], stop: Optional[Sequence[str]], top_logprobs: Optional[int] = None,
                     lookup: int = 0) -> tuple:
    p = _lib.phi4_generate_default_params()
    p.lookup = int(lookup)
    p.max_tokens = int(max_tokens)
    p.top_logprobs = -1 if top_logprobs is None else int(top_logprobs)
    s = p.sampling
    s.temperature, s.top_k, s.top_p, s.min_p = float(temperature), int(top_k), float(top_p), float(min_p)
    s.repetition_penalty, s.presence_penalty, s.frequency_penalty = float(repeat_penalty), float(presence_penalty), float(frequency_penalty)
    if seed is not None:
        s.use_seed, s.seed = 1, int(seed) & 0xFFFFFFFFFFFFFFFF
    p.sampling = s
    keep: list = []
    if stop:
        if isinstance(stop, str):
            stop = [stop]
        encoded = [x.encode("utf-8") for x in stop]
        arr = (c_char_p * len(encoded))(*encoded)
        keep = [encoded, arr]
        p.stop_strings = arr
        p.n_stop_strings = len(encoded)
    return p, keep


class Context:
    """One conversation's KV cache on a model. Use it from one thread at a time;
    `cancel()` may be called from any thread."""

    def __init__(self, model: "Model", n_ctx: int = 0, n_batch: int = 512, threads: Optional[int] = None,
                 kv_type: Optional[str] = None):
        """`kv_type`: None (f16 for quantized weights, f32 otherwise), "f32", "f16" or "q8_0" (about
        half the memory of f16)."""
        self.model = model
        p = _lib.phi4_context_default_params()
        p.n_ctx, p.n_batch, p.n_threads = int(n_ctx), int(n_batch), int(threads or 0)
        if kv_type not in _KV_TYPES:
            raise InvalidArgument(f"kv_type must be one of {sorted(k for k in _KV_TYPES if k)}")
        p.kv_type = _KV_TYPES[kv_type]
        h = c_void_p()
        _check(_lib.phi4_context_create(model._h, ctypes.byref(p), ctypes.byref(h)))
        self._h = h.value

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            _lib.phi4_context_free(self._h)
            self._h = None

    def __len__(self) -> int:
        return _lib.phi4_context_length(self._h)

    @property
    def capacity(self) -> int:
        """Positions the context holds."""
        return _lib.phi4_context_capacity(self._h)

    def reset(self) -> None:
        """Forget every token."""
        _check(_lib.phi4_context_reset(self._h))

    def truncate(self, n: int) -> None:
        """Keep the first `n` tokens."""
        _check(_lib.phi4_context_truncate(self._h, int(n)))

    def eval(self, ids: Sequence[int], all_logits: bool = False) -> None:
        """Append `ids` to the context and compute logits (of the last position, or all)."""
        arr = _ids(ids)
        _check(_lib.phi4_eval(self._h, arr, len(ids), int(all_logits)))

    def logits(self, row: int = -1) -> "ctypes.Array[ctypes.c_float]":
        """The logits of a row of the last eval, as a float array (supports the buffer protocol:
        `numpy.frombuffer(ctx.logits(), dtype=numpy.float32)`)."""
        buf = (c_float * self.model.vocab_size)()
        _check(_lib.phi4_get_logits(self._h, int(row), buf, self.model.vocab_size, None))
        return buf

    def save_state(self) -> bytes:
        """The context's tokens and KV cache (versioned, checksummed, tied to the model)."""
        n = c_size_t(0)
        st = _lib.phi4_context_save_state(self._h, None, 0, ctypes.byref(n))
        if st != _TOO_SMALL:
            _check(st)
        buf = ctypes.create_string_buffer(n.value)
        _check(_lib.phi4_context_save_state(self._h, buf, n.value, ctypes.byref(n)))
        return buf.raw[:n.value]

    def load_state(self, state: bytes) -> None:
        """Restore a state from save_state() (same model); generation then continues exactly as
        it would have in the saved context."""
        _check(_lib.phi4_context_load_state(self._h, state, len(state)))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """save_state() into a file."""
        _check(_lib.phi4_context_save_file(self._h, os.fsencode(path)))

    def load(self, path: Union[str, os.PathLike]) -> None:
        """load_state() from a file."""
        _check(_lib.phi4_context_load_file(self._h, os.fsencode(path)))

    def reuse_prefix(self, ids: Sequence[int]) -> int:
        """Keep the longest prefix of the context that `ids` starts with (at least one id is left
        to evaluate); returns how many ids are already in the context."""
        kept = c_size_t(0)
        _check(_lib.phi4_context_reuse_prefix(self._h, _ids(ids), len(ids), ctypes.byref(kept)))
        return kept.value

    def cancel(self) -> None:
        """Ask a running evaluation or generation on this context to stop soon (any thread)."""
        _lib.phi4_cancel(self._h)

    def stream(self, prompt: Sequence[int], max_tokens: int = 256, temperature: float = 0.8, top_k: int = 40,
               top_p: float = 0.95, min_p: float = 0.05, repeat_penalty: float = 1.0, presence_penalty: float = 0.0,
               frequency_penalty: float = 0.0, seed: Optional[int] = None,
               stop: Optional[Sequence[str]] = None, top_logprobs: Optional[int] = None, lookup: int = 0) -> "Stream":
        """Start a generation after `prompt` (ids appended to the context); iterate for text pieces.
        With `top_logprobs` (0…20), `Stream.logprobs()` gives each generated token's log-probability."""
        params, keep = _generate_params(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, presence_penalty,
                                        frequency_penalty, seed, stop, top_logprobs, lookup)
        arr = _ids(prompt)
        _check(_lib.phi4_generation_start(self._h, arr, len(prompt), ctypes.byref(params)))
        return Stream(self, len(prompt))


class Stream:
    """An iterator over generated text pieces (whole UTF-8 characters). Breaking out of the loop
    (or an exception such as KeyboardInterrupt between pieces) ends the generation."""

    def __init__(self, ctx: Context, prompt_tokens: int):
        self.ctx = ctx
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
        n, tok, reason = c_size_t(0), c_int32(0), c_int32(0)
        try:
            while True:
                st = _lib.phi4_generation_next(self.ctx._h, self._buf, len(self._buf), ctypes.byref(n), ctypes.byref(tok),
                                               ctypes.byref(reason))
                if st == _TOO_SMALL:
                    self._buf = ctypes.create_string_buffer(n.value)
                    continue
                _check(st)
                break
        except BaseException:
            self.close()
            raise
        if n.value == 0 and reason.value != 0:
            self.finish_reason = _STOP_NAMES.get(reason.value, "stop")
            self.close()
            raise StopIteration
        return self._buf.raw[:n.value].decode("utf-8")

    def logprobs(self) -> List[Dict[str, Any]]:
        """For each token generated so far (with `top_logprobs` set): {"token": id, "logprob": float,
        "top_logprobs": [(id, logprob), ...]} — log-softmax of the model's raw logits."""
        n = _lib.phi4_generation_token_count(self.ctx._h)
        out: List[Dict[str, Any]] = []
        one, top, k = _TokenLogprob(), (_TokenLogprob * 20)(), c_size_t(0)
        for i in range(max(0, n)):
            _check(_lib.phi4_generation_logprob(self.ctx._h, i, ctypes.byref(one), top, 20, ctypes.byref(k)))
            out.append({"token": one.token, "logprob": one.logprob,
                        "top_logprobs": [(top[j].token, top[j].logprob) for j in range(k.value)]})
        return out

    def lookup_counts(self) -> tuple:
        """Prompt lookup (`lookup=N`): (draft tokens proposed, draft tokens accepted) so far; each
        accepted one is a token that needed no pass over the weights of its own."""
        proposed, accepted = c_int32(0), c_int32(0)
        _check(_lib.phi4_generation_lookup_counts(self.ctx._h, ctypes.byref(proposed), ctypes.byref(accepted)))
        return proposed.value, accepted.value

    def close(self) -> None:
        """End the generation (safe to call twice)."""
        if not self._done:
            self._done = True
            _lib.phi4_generation_finish(self.ctx._h)
            if self.finish_reason is None:
                self.finish_reason = "cancelled"
            # The tokens the generation produced, as the library counts them.
            self.completion_tokens = max(0, _lib.phi4_generation_token_count(self.ctx._h))

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Model


class Model:
    """A Phi-4 model: an HF directory or a GGUF file. Immutable; share it between threads.

    `weights` quantizes an HF checkpoint at load: None/"f32", "q8_0", "q4_0", "q4_0-mixed".
    `threads` is the default thread count of the contexts this object creates."""

    def __init__(self, path: Union[str, os.PathLike], *, threads: Optional[int] = None, weights: Optional[str] = None,
                 n_ctx: int = 4096, kv_type: Optional[str] = None):
        if weights not in _WEIGHTS:
            raise InvalidArgument(f"weights must be one of {sorted(k for k in _WEIGHTS if k)}")
        p = _lib.phi4_model_default_params()
        p.weight_format = _WEIGHTS[weights]
        h = c_void_p()
        _check(_lib.phi4_model_load(os.fsencode(path), ctypes.byref(p), ctypes.byref(h)))
        self._h = h.value
        self.threads = threads
        self.kv_type = kv_type
        self._n_ctx = n_ctx
        info = _ModelInfo()
        info.struct_size = ctypes.sizeof(_ModelInfo)
        _check(_lib.phi4_model_get_info(self._h, ctypes.byref(info)))
        self._info = info
        self.tokenizer = Tokenizer("", _handle=_lib.phi4_model_tokenizer(self._h), _owner=self)
        self._ctx: Optional[Context] = None

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            self._ctx = None
            _lib.phi4_model_free(self._h)
            self._h = None

    @property
    def vocab_size(self) -> int:
        """Width of the logits."""
        return self._info.vocab_size

    @property
    def context_length(self) -> int:
        """The longest context the model was trained for."""
        return self._info.context_length

    @property
    def eos_token(self) -> int:
        return self._info.eos_token

    @property
    def bos_token(self) -> int:
        return self._info.bos_token

    @property
    def eog_tokens(self) -> List[int]:
        """Ids that end generation."""
        buf = (c_int32 * 16)()
        n = c_size_t(0)
        _check(_lib.phi4_model_eog_tokens(self._h, buf, 16, ctypes.byref(n)))
        return list(buf[:n.value])

    def tokenize(self, text: str, special: bool = False) -> List[int]:
        """Token ids of `text` (special-token text is plain text unless `special`)."""
        return self.tokenizer.tokenize(text, special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of `ids`."""
        return self.tokenizer.detokenize(ids)

    def context(self, n_ctx: Optional[int] = None, threads: Optional[int] = None,
                kv_type: Optional[str] = None) -> Context:
        """A new context (KV cache) on this model; `kv_type` as for Context."""
        return Context(self, n_ctx or min(self._n_ctx, self.context_length), threads=threads or self.threads,
                       kv_type=kv_type or self.kv_type)

    def _fresh_context(self) -> Context:
        if self._ctx is None:
            self._ctx = self.context()
        else:
            self._ctx.reset()
        return self._ctx

    def generate(self, prompt: Union[str, Sequence[int]], *, max_tokens: int = 256, temperature: float = 0.8,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, repeat_penalty: float = 1.0,
                 presence_penalty: float = 0.0, frequency_penalty: float = 0.0, seed: Optional[int] = None,
                 stop: Optional[Sequence[str]] = None, stream: bool = False,
                 top_logprobs: Optional[int] = None, lookup: int = 0) -> Union[str, Iterator[str]]:
        """Complete `prompt` (text, or token ids). Returns the text, or an iterator of pieces with `stream`.
        With `top_logprobs`, `model.last_stream.logprobs()` gives per-token log-probabilities; `lookup`
        (e.g. 5) turns on prompt-lookup decoding (same greedy text, faster on text that repeats;
        `model.last_stream.lookup_counts()` gives the drafts proposed and accepted)."""
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise InvalidArgument("the prompt is empty")
        # The model's own context keeps the previous call's tokens: a prompt that extends them (the
        # same conversation with one more turn) only evaluates the new part.
        if self._ctx is None:
            self._ctx = self.context()
        kept = self._ctx.reuse_prefix(ids)
        s = self._ctx.stream(ids[kept:], max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
                                         presence_penalty, frequency_penalty, seed, stop, top_logprobs, lookup)
        self.last_stream = s
        return s if stream else "".join(s)

    def _chat_ids(self, messages: Sequence[Dict[str, str]], max_tokens: int) -> List[int]:
        # The long-chat policy: drop the oldest exchanges (never the system message) so that the
        # prompt and max_tokens fit in the context.
        n_ctx = min(self._n_ctx, self.context_length)
        return self.tokenizer.chat_template(messages, budget=max(1, n_ctx - min(max_tokens, n_ctx // 2)))

    def chat(self, messages: Sequence[Dict[str, str]], **kwargs: Any) -> Union[str, Iterator[str]]:
        """The assistant's reply to `messages` ([{"role": ..., "content": ...}]), or a stream. A
        conversation longer than the context loses its oldest exchanges (the system message stays);
        re-sending a conversation with one more turn only evaluates the new part."""
        return self.generate(self._chat_ids(messages, kwargs.get("max_tokens", 256)), **kwargs)

    def create_chat_completion(self, messages: Sequence[Dict[str, str]], **kwargs: Any) -> Any:
        """An OpenAI-shaped chat completion (a dict, or an iterator of chunk dicts with stream=True)."""
        stream = kwargs.pop("stream", False)
        want_logprobs = bool(kwargs.pop("logprobs", False))
        top_n = int(kwargs.pop("top_logprobs", 0) or 0)
        ids = self._chat_ids(messages, kwargs.get("max_tokens", 256))
        pieces = self.generate(ids, stream=True, top_logprobs=top_n if want_logprobs else None, **kwargs)
        created = int(time.time())
        if stream:
            def chunks() -> Iterator[Dict[str, Any]]:
                yield {"object": "chat.completion.chunk", "created": created, "model": "phi-4",
                       "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
                for p in pieces:
                    yield {"object": "chat.completion.chunk", "created": created, "model": "phi-4",
                           "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                yield {"object": "chat.completion.chunk", "created": created, "model": "phi-4",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": pieces.finish_reason}]}
            return chunks()
        text = "".join(pieces)
        choice: Dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": pieces.finish_reason, "logprobs": None}
        if want_logprobs:
            def entry(token: int, logprob: float) -> Dict[str, Any]:
                b = self.tokenizer.token_bytes(token)
                return {"token": b.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(b)}
            choice["logprobs"] = {"content": [
                dict(entry(r["token"], r["logprob"]), top_logprobs=[entry(t, lp) for t, lp in r["top_logprobs"]])
                for r in pieces.logprobs()]}
        return {"object": "chat.completion", "created": created, "model": "phi-4",
                "choices": [choice],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": pieces.completion_tokens,
                          "total_tokens": len(ids) + pieces.completion_tokens}}
