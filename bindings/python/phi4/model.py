"""Models: the weights and tokenizer of a Phi-4 file, and the high-level generate / chat calls."""
from __future__ import annotations

import ctypes
import os
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _native as N
from . import responses
from .batch import Batch
from .context import Context, Stream
from .errors import InvalidArgument, check
from .tokenizer import Tokenizer


class Model:
    """A Phi-4 model: an HF directory, a GGUF file, or a Hugging Face Hub model
    "OWNER/NAME[:QUANT][@REVISION]" found in the Hugging Face cache (downloaded there by
    `Model.from_pretrained`, huggingface_hub, llama.cpp or `phi4 pull`).

    A Model may be shared between threads. `generate`, `chat` and `create_chat_completion` run on
    a context the model keeps (so that a conversation re-sent with one more turn only evaluates
    the new part); while one call or unfinished stream holds it, a concurrent call gets a fresh
    context of its own, so calls from several threads run side by side. `context()` makes a
    context for your own use.

    `weights` quantizes an HF checkpoint (or a GGUF file's float tensors) at load: None/"f32",
    "q8_0", "q4_0", "q4_0-mixed" or "q4_k_m" (llama.cpp's Q4_K_M mix).
    `threads` is the default thread count of the contexts this object creates; `n_ctx` their
    capacity (at most the trained context length). `progress(done, total)` is called as weight
    matrices are converted at load (quantize-at-load of a full-size model takes minutes)."""

    def __init__(self, path: Union[str, os.PathLike], *, threads: Optional[int] = None, weights: Optional[str] = None,
                 n_ctx: int = 4096, kv_type: Optional[str] = None,
                 progress: Optional[Callable[[int, int], None]] = None):
        if weights not in N.WEIGHTS:
            raise InvalidArgument(f"weights must be one of {sorted(k for k in N.WEIGHTS if k)}")
        p = N.defaults(N.ModelParams)
        p.weight_format = N.WEIGHTS[weights]
        if progress is not None:
            # Called with (matrices done, in all) for each weight matrix converted at load.
            p.progress = N.PROGRESS(lambda _user, done, total: progress(done, total))
        h = N.c_void_p()
        check(N.lib.phi4_model_load(os.fsencode(path), ctypes.byref(p), ctypes.byref(h)))
        self._h = h.value
        self.threads = threads
        self.kv_type = kv_type
        self._n_ctx = n_ctx
        info = N.ModelInfo()
        info.struct_size = ctypes.sizeof(N.ModelInfo)
        check(N.lib.phi4_model_get_info(self._h, ctypes.byref(info)))
        self._info = info
        self.tokenizer = Tokenizer("", _handle=N.lib.phi4_model_tokenizer(self._h), _owner=self)
        self._lock = threading.Lock()
        self._ctx: Optional[Context] = None  # the kept context
        self._ctx_in_use = False
        self.last_stream: Optional[Stream] = None

    @classmethod
    def from_pretrained(cls, repo_id: str, filename: Optional[str] = None, *, revision: Optional[str] = None,
                        cache_dir: Optional[Union[str, os.PathLike]] = None, local_files_only: bool = False,
                        **kwargs: Any) -> "Model":
        """A model from the Hugging Face Hub, as llama-cpp-python's `Llama.from_pretrained`: downloads
        (or finds in the cache huggingface_hub, llama.cpp and `phi4 pull` share) the GGUF file
        `filename` names — a glob such as "*Q4_K_M.gguf"; every shard of a split file comes along —
        or, with no filename and no GGUF file in the repository, the transformers checkpoint.
        Needs huggingface_hub (`pip install "phi4[hub]"`); other arguments go to `Model(...)`."""
        return cls(hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                local_files_only=local_files_only), **kwargs)

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            self._ctx = None
            N.lib.phi4_model_free(self._h)
            self._h = None

    @property
    def vocab_size(self) -> int:
        """Width of the logits."""
        return self._info.vocab_size

    @property
    def trained_context_length(self) -> int:
        """The longest context the model was trained for (max_position_embeddings)."""
        return self._info.trained_context_length

    @property
    def context_length(self) -> int:
        """The capacity of the contexts this object makes by default: min(n_ctx, the trained length)."""
        return min(self._n_ctx, self.trained_context_length)

    @property
    def eos_token(self) -> int:
        """The primary end-of-sequence id (-1: none)."""
        return self._info.eos_token

    @property
    def bos_token(self) -> int:
        """The beginning-of-sequence id (-1: none)."""
        return self._info.bos_token

    @property
    def eog_tokens(self) -> List[int]:
        """Ids that end generation."""
        buf = (N.c_int32 * 16)()
        n = N.c_size_t(0)
        check(N.lib.phi4_model_eog_tokens(self._h, buf, 16, ctypes.byref(n)))
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
        return Context(self, n_ctx or self.context_length, threads=threads or self.threads,
                       kv_type=kv_type or self.kv_type)

    def _borrow_context(self) -> tuple:
        """The kept context if no other call holds it, else a fresh one; and the function that
        gives it back."""
        with self._lock:
            if not self._ctx_in_use:
                self._ctx_in_use = True
                if self._ctx is None:
                    try:
                        self._ctx = self.context()
                    except BaseException:
                        self._ctx_in_use = False
                        raise
                return self._ctx, self._give_back
        return self.context(), None

    def _give_back(self) -> None:
        with self._lock:
            self._ctx_in_use = False

    def generate(self, prompt: Union[str, Sequence[int]], *, stream: bool = False, **options: Any) -> Union[str, Iterator[str]]:
        """Complete `prompt` (text, or token ids). Returns the text, or an iterator of pieces with `stream`.

        Options (None or absent: the library's default): max_tokens, temperature, top_k, top_p,
        min_p, repeat_penalty, presence_penalty, frequency_penalty, seed, stop (a string or a list),
        top_logprobs (0…20: `model.last_stream.logprobs()` gives per-token log-probabilities) and
        lookup (e.g. 5: prompt-lookup decoding, the same greedy text, faster on text that repeats;
        `model.last_stream.lookup_counts()` gives the drafts proposed and accepted).

        Constrained output (one of): response_format (OpenAI's {"type": "json_object"} or
        {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}), json_schema (a
        schema dict or its JSON text), grammar (llama.cpp's GBNF) or regex (the whole output
        matches). The output is then a complete match whenever max_tokens allows one; a schema or
        grammar that cannot be compiled raises InvalidArgument naming what is wrong."""
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise InvalidArgument("the prompt is empty")
        ctx, give_back = self._borrow_context()
        try:
            # The kept context holds the previous call's tokens: a prompt that extends them (the
            # same conversation with one more turn) only evaluates the new part.
            kept = ctx.reuse_prefix(ids)
            s = ctx.stream(ids[kept:], **options)
        except BaseException:
            if give_back:
                give_back()
            raise
        s._on_close = give_back
        self.last_stream = s
        return s if stream else "".join(s)

    def embed(self, input: Union[str, Sequence[str]], *, pooling: str = "mean", normalize: bool = False) -> Any:
        """The embedding of a text (a list of `hidden_size` floats: the final-norm hidden states,
        pooled), or of each text of a list (evaluated together in batched passes). `pooling`:
        "mean" (default), "last", "cls" (the first token) or "none" (one vector per token);
        `normalize` divides each vector by its L2 norm."""
        texts = [input] if isinstance(input, str) else list(input)
        ids = [self.tokenize(t) for t in texts]
        if any(not x for x in ids):
            raise InvalidArgument("an input has no tokens (an empty string)")
        ctx, give_back = self._borrow_context()
        try:
            out = ctx.embed(ids, pooling=pooling, normalize=normalize)
        finally:
            if give_back:
                give_back()
        return out[0] if isinstance(input, str) else out

    def generate_many(self, prompts: Sequence[Union[str, Sequence[int]]], *, slots: int = 4,
                      prefill_chunk: Optional[int] = None, **options: Any) -> List[str]:
        """Complete every prompt, decoding up to `slots` of them together (one pass over the
        weights per token for all of them: on a CPU several cost little more than one). Returns
        the texts in order. Options as for `generate`; with quantized weights each text is exactly
        what `generate` gives with the same options (greedy, or seeded). `Batch` gives streaming,
        cancellation and per-request options."""
        if not prompts:
            return []
        b = Batch(self, slots=min(int(slots), len(prompts)), prefill_chunk=prefill_chunk,
                  max_queue=len(prompts))
        return [r["text"] for r in b.run(prompts, **options)]

    def _chat_ids(self, messages: Sequence[Dict[str, str]], max_tokens: Optional[int]) -> List[int]:
        # The long-chat policy: drop the oldest exchanges (never the system message) so that the
        # prompt and max_tokens fit in the context.
        if max_tokens is None:
            max_tokens = N.defaults(N.GenerateParams).max_tokens
        n_ctx = self.context_length
        return self.tokenizer.chat_template(messages, budget=max(1, n_ctx - min(int(max_tokens), n_ctx // 2)))

    def chat(self, messages: Sequence[Dict[str, str]], **kwargs: Any) -> Union[str, Iterator[str]]:
        """The assistant's reply to `messages` ([{"role": ..., "content": ...}]), or a stream. A
        conversation longer than the context loses its oldest exchanges (the system message stays);
        re-sending a conversation with one more turn only evaluates the new part. Options as for
        `generate`."""
        return self.generate(self._chat_ids(messages, kwargs.get("max_tokens")), **kwargs)

    def create_chat_completion(self, messages: Sequence[Dict[str, Any]], **kwargs: Any) -> Any:
        """An OpenAI chat completion: `messages` and the options of the HTTP API (max_tokens,
        temperature, top_p, seed, stop, presence_penalty, frequency_penalty, logit_bias, logprobs,
        top_logprobs, stream, stream_options, response_format, tools, tool_choice,
        parallel_tool_calls, and top_k, min_p, repeat_penalty). A reply that calls functions has
        `tool_calls` (finish_reason "tool_calls"); send results back as {"role": "tool",
        "tool_call_id": ..., "content": ...} messages. Returns the
        response dict, or with stream=True an iterator of chunk dicts. Requests and responses go
        through the engine's OpenAI mapping, the same as phi4-server's (a prompt longer than the
        context is an error, as there)."""
        return self._openai(responses.CHAT, dict(kwargs, messages=list(messages)))

    def create_completion(self, prompt: Union[str, Sequence[int]], **kwargs: Any) -> Any:
        """An OpenAI text completion of `prompt` (text, or token ids); options as for
        `create_chat_completion` (logprobs is a number, 0…5, as in that API)."""
        return self._openai(responses.COMPLETION, dict(kwargs, prompt=prompt if isinstance(prompt, str) else list(prompt)))

    def _openai(self, kind: int, request: Dict[str, Any]) -> Any:
        request.setdefault("model", responses.MODEL_NAME)
        ctx, give_back = self._borrow_context()
        try:
            responses.start(ctx, kind, request)
        except BaseException:
            if give_back:
                give_back()
            raise
        out = responses.bodies(ctx, give_back)
        if request.get("stream"):
            return out
        return next(iter(list(out)))


def hub_download(repo_id: str, filename: Optional[str] = None, *, revision: Optional[str] = None,
                 cache_dir: Optional[Union[str, os.PathLike]] = None, local_files_only: bool = False) -> str:
    """The local path of a Hub model as `Model.from_pretrained` takes it: the GGUF file `filename`
    (a glob; every shard of a split file comes along) or, with no filename and no GGUF file in the
    repository, the transformers checkpoint's folder. Needs huggingface_hub."""
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError("from_pretrained needs huggingface_hub: pip install \"phi4[hub]\" "
                          "(or pip install huggingface_hub)") from None
    import fnmatch
    import re

    def get(name: str) -> str:
        return huggingface_hub.hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir,
                                               local_files_only=local_files_only)

    if local_files_only:
        files = [] if filename is None or any(c in filename for c in "*?[") else [filename]
    else:
        files = huggingface_hub.HfApi().list_repo_files(repo_id, revision=revision)
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if filename is not None:
        matches = [f for f in (ggufs or files) if fnmatch.fnmatch(f, filename) or f == filename]
        if not matches:
            raise ValueError(f"no file of {repo_id} matches {filename!r}; its GGUF files: {ggufs}")
        first = [f for f in matches if not re.search(r"-0000[2-9]-of-|-000[1-9]\d-of-", f)]
        if len(first) > 1:
            raise ValueError(f"several files of {repo_id} match {filename!r}: {first}")
        path = get(first[0])
        shard = re.search(r"-(\d{5})-of-(\d{5})\.gguf$", first[0])
        if shard:
            for i in range(2, int(shard.group(2)) + 1):
                get(first[0][:shard.start()] + f"-{i:05d}-of-{shard.group(2)}.gguf")
        return path
    if ggufs:
        raise ValueError(f"{repo_id} has GGUF files; name one with filename= (a glob such as '*Q4_K_M.gguf'): {ggufs}")
    folder = huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                               local_files_only=local_files_only,
                                               allow_patterns=["*.json", "*.safetensors", "*.txt", "*.tiktoken",
                                                               "tokenizer.model"])
    return folder
