"""Batches: many generations advanced together, one pass over the weights per step."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _native as N
from .context import generate_params
from .errors import InvalidArgument, check
from .errors import ids as ids_array

if TYPE_CHECKING:
    from .model import Model


@dataclass
class Update:
    """What one step did for one request."""
    request: int
    text: str                       #: text that became final in this step
    token: Optional[int]            #: the token generated in this step, if any
    logprob: Optional[float]        #: its log-probability (when top_logprobs was asked for)
    top_logprobs: List[Tuple[int, float]] = field(default_factory=list)
    finish_reason: Optional[str] = None  #: set in the request's last update ("stop", "length", "cancelled")
    completion_tokens: int = 0      #: tokens generated so far
    prompt_tokens_evaluated: int = 0  #: prompt tokens evaluated (the rest were cached in its slot)


class Batch:
    """Serves many generations from one model at once (continuous batching).

    Each request gets a slot with a KV cache of its own (memory: `slots` caches of `n_ctx`
    positions); every `step()` evaluates the next token of every generating request and chunks
    of `prefill_chunk` prompt tokens in one pass over the weights. With quantized weights a
    request's output is exactly what it would be alone. `submit` and `cancel` may be called from
    any thread, `step` from one thread at a time."""

    def __init__(self, model: "Model", slots: int = 4, n_ctx: Optional[int] = None, threads: Optional[int] = None,
                 kv_type: Optional[str] = None, prefill_chunk: Optional[int] = None, max_queue: Optional[int] = None):
        self.model = model
        p = N.defaults(N.BatchParams)
        p.n_slots = int(slots)
        p.n_ctx = int(n_ctx or model.context_length)
        p.n_threads = int(threads or model.threads or 0)
        if kv_type not in N.KV_TYPES:
            raise InvalidArgument(f"kv_type must be one of {sorted(k for k in N.KV_TYPES if k)}")
        p.kv_type = N.KV_TYPES[kv_type or model.kv_type]
        if prefill_chunk is not None:
            p.prefill_chunk = int(prefill_chunk)
        if max_queue is not None:
            p.max_queue = int(max_queue)
        h = N.c_void_p()
        check(N.lib.phi4_batch_create(model._h, ctypes.byref(p), ctypes.byref(h)))
        self._h = h.value
        self._top: Dict[int, Optional[int]] = {}  # request → top_logprobs asked for (None: no logprobs)

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            N.lib.phi4_batch_free(self._h)
            self._h = None

    def submit(self, prompt: Union[str, Sequence[int]], **options: Any) -> int:
        """Queue a generation after `prompt` (text or ids); returns the request number its updates
        carry. Options as for `Model.generate` (lookup is not used in batches). Raises ContextBusy
        when the queue is full."""
        ids = self.model.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        params, keep = generate_params(**options)
        out = ctypes.c_int64(0)
        check(N.lib.phi4_batch_submit(self._h, ids_array(ids), len(ids), ctypes.byref(params), ctypes.byref(out)))
        del keep
        top = options.get("top_logprobs")
        self._top[out.value] = None if top is None else int(top)
        return out.value

    def cancel(self, request: int) -> None:
        """Stop a request; its last update comes from the next step."""
        check(N.lib.phi4_batch_cancel(self._h, int(request)))

    def counts(self) -> Tuple[int, int]:
        """(requests waiting for a slot, requests in a slot)."""
        q, a = N.c_int32(0), N.c_int32(0)
        check(N.lib.phi4_batch_counts(self._h, ctypes.byref(q), ctypes.byref(a)))
        return q.value, a.value

    def step(self) -> List[Update]:
        """Run one forward pass; returns an update for every request that changed."""
        n = N.c_size_t(0)
        check(N.lib.phi4_batch_step(self._h, ctypes.byref(n)))
        out = []
        top_buf = (N.TokenLogprob * 20)()
        for i in range(n.value):
            u = N.BatchUpdate()
            u.struct_size = ctypes.sizeof(u)
            check(N.lib.phi4_batch_get_update(self._h, i, ctypes.byref(u)))
            text = ctypes.string_at(u.text, u.text_len).decode("utf-8") if u.text_len else ""
            top: List[Tuple[int, float]] = []
            wants = self._top.get(u.request)
            has_token = u.token >= 0
            if has_token and wants:
                k = N.c_size_t(0)
                check(N.lib.phi4_batch_get_top_logprobs(self._h, i, top_buf, 20, ctypes.byref(k)))
                top = [(top_buf[j].token, top_buf[j].logprob) for j in range(k.value)]
            reason = N.STOP_NAMES.get(u.stop_reason) if u.stop_reason else None
            if reason is not None:
                self._top.pop(u.request, None)
            out.append(Update(u.request, text, u.token if has_token else None,
                              u.logprob if has_token and wants is not None else None, top, reason,
                              u.n_generated, u.n_prompt_evaluated))
        return out

    def run(self, prompts: Sequence[Union[str, Sequence[int]]], **options: Any) -> List[Dict[str, Any]]:
        """Submit every prompt, step until all are done; returns per prompt, in order, a dict with
        `text`, `tokens`, `finish_reason` and `prompt_tokens_evaluated`."""
        ids = [self.submit(p, **options) for p in prompts]
        results: Dict[int, Dict[str, Any]] = {i: {"text": "", "tokens": [], "finish_reason": None} for i in ids}
        left = set(ids)
        while left:
            for u in self.step():
                r = results[u.request]
                r["text"] += u.text
                if u.token is not None:
                    r["tokens"].append(u.token)
                if u.finish_reason:
                    r["finish_reason"] = u.finish_reason
                    r["prompt_tokens_evaluated"] = u.prompt_tokens_evaluated
                    left.discard(u.request)
        return [results[i] for i in ids]
