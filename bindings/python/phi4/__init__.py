"""Phi-4 inference on CPUs: the Python binding of libphi4.

A thin layer over the C ABI (include/phi4.h) through ctypes: every call into the library
releases the GIL, so other Python threads run while the model loads, evaluates or generates.

    import phi4
    model = phi4.Model("phi-4")                         # HF directory or .gguf file
    print(model.generate("Hello", max_tokens=16))
    for piece in model.chat([{"role": "user", "content": "Hi!"}], stream=True):
        print(piece, end="")

Modules: `_native` (the ctypes declarations of the C ABI), `errors`, `tokenizer`, `context`
(contexts and streams), `batch` (many generations at once), `model`, `responses` (OpenAI-shaped
dicts), `llama` (llama-cpp-python's `Llama` API: `from phi4 import Llama`).
"""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Optional

from . import _native
from .batch import Batch, Update
from .context import Context, Stream
from .errors import Cancelled, ContextBusy, ContextFullError, InvalidArgument, ModelFileError, Phi4Error
from .llama import (LLAMA_DEFAULT_SEED, LLAMA_POOLING_TYPE_CLS, LLAMA_POOLING_TYPE_LAST, LLAMA_POOLING_TYPE_MEAN,
                    LLAMA_POOLING_TYPE_NONE, LLAMA_POOLING_TYPE_UNSPECIFIED, Llama, LlamaGrammar, LlamaState,
                    LogitsProcessorList, StoppingCriteriaList)
from .model import Model
from .tokenizer import Tokenizer

__all__ = ["Model", "Llama", "LlamaGrammar", "LlamaState", "LogitsProcessorList", "StoppingCriteriaList",
           "LLAMA_DEFAULT_SEED", "LLAMA_POOLING_TYPE_UNSPECIFIED", "LLAMA_POOLING_TYPE_NONE", "LLAMA_POOLING_TYPE_MEAN",
           "LLAMA_POOLING_TYPE_CLS", "LLAMA_POOLING_TYPE_LAST", "Tokenizer", "Context", "Stream", "Batch", "Update", "Phi4Error", "InvalidArgument", "ModelFileError",
           "ContextFullError", "Cancelled", "ContextBusy", "constraint_match", "version", "__version__", "ABI_VERSION",
           "REASONING_SYSTEM_PROMPT"]

#: The C ABI version this package is written for (the loaded library's is checked at import).
ABI_VERSION = _native.ABI_VERSION


def constraint_match(text: str, *, json_schema: Any = None, grammar: Optional[str] = None, regex: Optional[str] = None,
                     response_format: Optional[Dict[str, Any]] = None) -> bool:
    """Whether `text` is a complete match of a constraint, given as to `Model.generate` (one of
    `json_schema` — JSON text or a dict —, `grammar` (GBNF), `regex`, `response_format`): the
    same compiled grammar that masks generation answers. InvalidArgument when the constraint does
    not compile."""
    from ._native import lib
    from .context import constraint_of
    from .errors import check
    kind, spec = constraint_of(response_format, json_schema, grammar, regex)
    raw = (spec or "").encode()
    data = text.encode()
    out = ctypes.c_int32(0)
    check(lib.phi4_constraint_match(kind, raw if spec is not None else None, len(raw), data, len(data), ctypes.byref(out)))
    return out.value == 1


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _native.lib.phi4_version().decode()


#: Phi-4-reasoning's system prompt (the system text of its published chat template): pass it as
#: the first message, {"role": "system", "content": phi4.REASONING_SYSTEM_PROMPT}. A model whose
#: vocabulary has Phi-4-reasoning's <think> token gets it by itself when a chat has no system message.
REASONING_SYSTEM_PROMPT: str = _native.lib.phi4_reasoning_system_prompt().decode()

#: The package's version: that of the library it carries.
__version__ = version()
