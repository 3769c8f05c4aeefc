"""Comparing what llama-cpp-python and phi4.Llama return for the same snippet: the shape (keys
and value types) always, the values for the greedy snippets (volatile fields — ids, timestamps —
left out; numbers within a tolerance, since two engines round differently)."""
from __future__ import annotations

from typing import Any, List, Optional

VOLATILE = {"id", "created", "model"}  # "model" is the file's path, which differs between checkouts
# Two engines' floats (log-probabilities, embeddings) differ in the last digits: q8_0 weights
# times 8-bit (llama.cpp) or f32 (libphi4) activations.
ABS_TOL, REL_TOL = 0.02, 0.02


def plain(x: Any) -> Any:
    """JSON-ready data: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    return x


def shape(x: Any) -> Any:
    """Keys and value types: dicts by key, lists by their first element, numbers as "number"."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in sorted(x.items())}
    if isinstance(x, list):
        return [shape(x[0])] if x else []
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    if x is None:
        return "null"
    return type(x).__name__


def first_difference(a: Any, b: Any, path: str = "") -> Optional[str]:
    """Where two results differ (None: they agree), ignoring VOLATILE keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - VOLATILE
        for k in sorted(keys):
            if k not in a or k not in b:
                return f"{path}.{k}: present on one side only"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
                abs(a - b) <= ABS_TOL + REL_TOL * abs(b):
            return None
        return f"{path}: {a!r} vs {b!r}"
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def differences(a: Any, b: Any) -> List[str]:
    d = first_difference(a, b)
    return [d] if d else []
