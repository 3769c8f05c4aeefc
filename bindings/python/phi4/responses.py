"""OpenAI-shaped completions through the engine's own OpenAI mapping (phi4_openai_start /
phi4_openai_next in the C ABI): the request is the JSON body the HTTP API takes and the answers
are its response bodies, parsed and written by the same code as phi4-server's, so the two never
drift apart."""
from __future__ import annotations

import ctypes
import json
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional

from . import _native as N
from .errors import check

if TYPE_CHECKING:
    from .context import Context

CHAT, COMPLETION = 0, 1
MODEL_NAME = "phi-4"


def start(ctx: "Context", kind: int, request: Dict[str, Any]) -> None:
    """Start an OpenAI request (a dict as the HTTP API's JSON body) on `ctx`."""
    body = json.dumps(request).encode("utf-8")
    check(N.lib.phi4_openai_start(ctx._h, kind, body, len(body)))


def bodies(ctx: "Context", on_done: Optional[Callable[[], None]] = None) -> Iterator[Dict[str, Any]]:
    """The response bodies of the request running on `ctx`: one object, or the chunks of a stream."""
    buf = ctypes.create_string_buffer(4096)
    n = N.c_size_t(0)
    try:
        while True:
            status = N.lib.phi4_openai_next(ctx._h, buf, len(buf), ctypes.byref(n))
            if status == N.BUFFER_TOO_SMALL:
                buf = ctypes.create_string_buffer(n.value)
                continue
            check(status)
            if n.value == 0:
                return
            yield json.loads(buf.raw[:n.value].decode("utf-8"))
    finally:
        if on_done:
            on_done()
