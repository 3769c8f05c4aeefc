"""Phi-4's tokenizer: text to ids and back, special tokens, and the chat template."""
from __future__ import annotations

import ctypes
import os
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native as N
from .errors import InvalidArgument, check
from .errors import ids as ids_array


class Tokenizer:
    """Phi-4's tokenizer alone (no weights are loaded): a model directory, tokenizer.json or .tiktoken file."""

    def __init__(self, path: Union[str, os.PathLike], _handle: Optional[int] = None, _owner: Any = None):
        self._owner = _owner
        if _handle is not None:
            self._h = _handle
            self._owned = False
            return
        h = N.c_void_p()
        check(N.lib.phi4_tokenizer_load(os.fsencode(path), ctypes.byref(h)))
        self._h = h.value
        self._owned = True

    def __del__(self) -> None:
        if getattr(self, "_owned", False) and self._h:
            N.lib.phi4_tokenizer_free(self._h)
            self._h = None

    def tokenize(self, text: str, special: bool = False) -> List[int]:
        """Token ids of `text`; with `special`, text such as "<|im_end|>" becomes its special id."""
        data = text.encode("utf-8", "surrogatepass")
        n = N.c_size_t(0)
        cap = len(data) + 8
        while True:
            buf = (N.c_int32 * cap)()
            st = N.lib.phi4_tokenize(self._h, data, len(data), int(special), buf, cap, ctypes.byref(n))
            if st == N.BUFFER_TOO_SMALL:
                cap = n.value
                continue
            check(st)
            return list(buf[:n.value])

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of `ids` (a character cut at the end becomes U+FFFD)."""
        arr = ids_array(ids)
        n = N.c_size_t(0)
        cap = len(ids) * 8 + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            st = N.lib.phi4_detokenize(self._h, arr, len(ids), buf, cap, ctypes.byref(n))
            if st == N.BUFFER_TOO_SMALL:
                cap = n.value + 1
                continue
            check(st)
            return buf.raw[:n.value].decode("utf-8")

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (possibly part of a UTF-8 character)."""
        buf = ctypes.create_string_buffer(256)
        n = N.c_size_t(0)
        check(N.lib.phi4_token_to_piece(self._h, int(token), buf, 256, ctypes.byref(n)))
        return buf.raw[:n.value]

    def token_id(self, special_text: str) -> int:
        """The id of a special token, e.g. "<|im_end|>"."""
        out = N.c_int32()
        check(N.lib.phi4_token_lookup(self._h, special_text.encode(), ctypes.byref(out)))
        return out.value

    def chat_template(self, messages: Sequence[Dict[str, str]], add_generation_prompt: bool = True,
                      budget: Optional[int] = None) -> List[int]:
        """Phi-4's chat prompt as ids; message contents are never parsed for special tokens.
        With `budget`, the long-chat policy applies: the oldest messages after a leading system
        message are dropped (a user message with its reply) until the prompt fits in `budget`
        tokens; `self.last_dropped` says how many were dropped."""
        keep = []
        arr = (N.ChatMessage * len(messages))()
        for i, m in enumerate(messages):
            try:
                role, content = m["role"].encode(), m["content"].encode("utf-8", "surrogatepass")
            except (KeyError, TypeError, AttributeError):
                raise InvalidArgument("messages are dicts with string 'role' and 'content'") from None
            keep += [role, content]
            arr[i] = N.ChatMessage(role, content)
        n = N.c_size_t(0)
        cap = 256
        while True:
            buf = (N.c_int32 * cap)()
            if budget is None:
                st = N.lib.phi4_chat_template(self._h, arr, len(messages), int(add_generation_prompt), buf, cap,
                                             ctypes.byref(n))
            else:
                dropped = N.c_size_t(0)
                st = N.lib.phi4_chat_template_fit(self._h, arr, len(messages), int(add_generation_prompt), int(budget), buf,
                                                 cap, ctypes.byref(n), ctypes.byref(dropped))
                self.last_dropped = dropped.value
            if st == N.BUFFER_TOO_SMALL:
                cap = n.value
                continue
            check(st)
            return list(buf[:n.value])
