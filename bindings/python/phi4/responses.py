"""OpenAI-shaped responses: a generation's pieces and counts as the dicts of the chat completions
API (a whole completion, or the chunks of a stream)."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, List, Optional

MODEL_NAME = "phi-4"


def chat_completion_chunks(pieces: Iterator[str], finish_reason: Callable[[], Optional[str]]) -> Iterator[Dict[str, Any]]:
    """The chunks of a streamed chat completion: the role, one chunk per piece, the finish reason."""
    created = int(time.time())

    def chunk(delta: Dict[str, Any], finish: Optional[str]) -> Dict[str, Any]:
        return {"object": "chat.completion.chunk", "created": created, "model": MODEL_NAME,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant"}, None)
    for p in pieces:
        yield chunk({"content": p}, None)
    yield chunk({}, finish_reason())


def token_logprob_entry(token_bytes: bytes, logprob: float) -> Dict[str, Any]:
    """One token of a `logprobs.content` list: its text, log-probability and bytes."""
    return {"token": token_bytes.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(token_bytes)}


def chat_completion(text: str, finish_reason: Optional[str], prompt_tokens: int, completion_tokens: int,
                    logprobs: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """A whole chat completion; `logprobs` is the `content` list of token entries, or None."""
    choice: Dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": finish_reason,
                              "logprobs": None if logprobs is None else {"content": logprobs}}
    return {"object": "chat.completion", "created": int(time.time()), "model": MODEL_NAME, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
