"""Error classification for the recovery ladder.

``classify`` maps an exception to an :class:`ErrorKind`; only OOM and DRIVER
errors are worth retrying (with smaller tiles, on CPU, ...). Bad user input and
user cancellation are never retried.
"""
from __future__ import annotations

from enum import Enum

import torch

try:  # optional: only needed to recognise NVML failures
    import pynvml
except ImportError:  # pragma: no cover - depends on the environment
    pynvml = None


class ErrorKind(str, Enum):
    OOM = "oom"
    DRIVER = "driver"
    INPUT = "input"
    INTERRUPT = "interrupt"
    OTHER = "other"


class InputError(ValueError):
    """Bad user input (wrong shapes, impossible settings, output too large). Never retried."""


class VideoIOError(ValueError):
    """A video file could not be read or written; the message says why and what to do."""


class Cancelled(Exception):
    """The run was cancelled by the user. Never retried."""


_OOM_TYPES = tuple(
    dict.fromkeys(t for t in (getattr(torch, "OutOfMemoryError", None),
                              getattr(torch.cuda, "OutOfMemoryError", None),
                              MemoryError) if t is not None)
)
_DRIVER_TYPES = tuple(
    t for t in (getattr(torch, "AcceleratorError", None),
                getattr(torch.cuda, "CudaError", None),
                getattr(pynvml, "NVMLError", None)) if t is not None
)
# Matched case-insensitively against RuntimeError messages. OOM is checked first,
# so "CUDA error: out of memory" and "CUBLAS_STATUS_ALLOC_FAILED" count as OOM.
_OOM_MARKERS = (
    "out of memory",
    "can't allocate memory",
    "not enough memory",
    "failed to allocate",
    "_status_alloc_failed",
)
_DRIVER_MARKERS = (
    "cuda error",
    "unspecified launch failure",
    "illegal memory access",
    "cudnn_status_",
    "cublas_status_",
    "device-side assert",
    "cudaerrorlaunchfailure",
    "an illegal instruction",
    "misaligned address",
)
_INTERRUPT_CLASS_NAMES = {"InterruptProcessingException"}  # ComfyUI's cancel (comfy not imported)
_MAX_CHAIN = 32


def is_interrupt(exc: BaseException) -> bool:
    """A user's stop: Ctrl-C, engine Cancelled, or ComfyUI's InterruptProcessingException (by class name:
    the engine does not import ComfyUI)."""
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        return True
    return any(c.__name__ in _INTERRUPT_CLASS_NAMES for c in type(exc).__mro__)


def _classify_one(exc: BaseException) -> ErrorKind:
    if is_interrupt(exc):
        return ErrorKind.INTERRUPT
    if isinstance(exc, InputError):
        return ErrorKind.INPUT
    if isinstance(exc, _OOM_TYPES):
        return ErrorKind.OOM
    msg = str(exc).lower() if isinstance(exc, RuntimeError) else ""
    if any(m in msg for m in _OOM_MARKERS):
        return ErrorKind.OOM
    if isinstance(exc, _DRIVER_TYPES) or any(m in msg for m in _DRIVER_MARKERS):
        return ErrorKind.DRIVER
    return ErrorKind.OTHER


def _chain(exc: BaseException):
    """The exception and what it was raised from / during, as a traceback shows them."""
    seen = set()
    while exc is not None and id(exc) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(exc))
        yield exc
        if exc.__cause__ is not None:
            exc = exc.__cause__
        elif not exc.__suppress_context__:
            exc = exc.__context__
        else:
            exc = None


def classify(exc: BaseException) -> ErrorKind:
    """Kind of failure, looking through ``__cause__``/``__context__``.

    An InputError at the top wins. Otherwise a cancel anywhere in the chain wins
    (never retry after the user stopped the run), then the first non-OTHER kind
    from the top down, so an OOM wrapped in another error is still OOM.
    """
    kinds = [_classify_one(e) for e in _chain(exc)]
    if kinds[0] is ErrorKind.INPUT:
        return kinds[0]
    if ErrorKind.INTERRUPT in kinds:
        return ErrorKind.INTERRUPT
    return next((k for k in kinds if k is not ErrorKind.OTHER), ErrorKind.OTHER)


def is_retryable(kind: ErrorKind) -> bool:
    return kind in (ErrorKind.OOM, ErrorKind.DRIVER)


def describe(exc: BaseException, limit: int = 200) -> str:
    """One short line for humans: the first non-empty line of the message, trimmed.

    RuntimeError (torch/CUDA) and engine errors carry readable messages and are shown
    as is; other types get their class name in front ("KeyError: 'x'").
    """
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    if not line:
        line = type(exc).__name__
    elif not isinstance(exc, (RuntimeError, InputError, Cancelled)):
        line = f"{type(exc).__name__}: {line}"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
