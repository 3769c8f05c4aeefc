"""The exceptions of the binding, one per kind of libphi4 status, and the check every call uses."""
from __future__ import annotations

import ctypes
from typing import Sequence

from . import _native as N


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


_CLASSES = {N.INVALID_ARGUMENT: InvalidArgument, N.IO: ModelFileError, N.INVALID_MODEL: ModelFileError,
            N.UNSUPPORTED: ModelFileError, N.CONTEXT_FULL: ContextFullError, N.CANCELLED: Cancelled,
            N.BUSY: ContextBusy}


def check(status: int) -> None:
    """Raises the exception for a failed call's status, with the library's message."""
    if status == N.OK:
        return
    message = (N.lib.phi4_last_error() or b"").decode("utf-8", "replace")
    raise _CLASSES.get(status, Phi4Error)(message, status)


def ids(values: Sequence[int]) -> "ctypes.Array[ctypes.c_int32]":
    """Token ids as a C int32 array (InvalidArgument for values that are not 32-bit integers)."""
    try:
        return (N.c_int32 * len(values))(*[int(v) for v in values])
    except (TypeError, OverflowError) as e:
        raise InvalidArgument(f"token ids must be 32-bit integers: {e}") from None
