"""Memory tuning: glibc malloc (big list responses otherwise leave memory parked in per-thread arenas) and
the garbage collector."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_M_ARENA_MAX = -8
_libc: ctypes.CDLL | None = None


def _load() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else None
        except OSError:
            _libc = None
    return _libc


def limit_arenas(count: int = 2) -> None:
    libc = _load()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, count)


def trim() -> None:
    libc = _load()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def freeze_startup_objects() -> None:
    """Keep what start-up built (modules, the catalog, compiled statements) out of every later collection:
    a full collection then walks only what requests allocate, which keeps its pauses off the latency tail.
    No collection first: start-up leaves about a thousand garbage objects, and finding them costs 50 ms of
    start. Enables the collector (`serve` disables it while it starts)."""
    gc.freeze()
    gc.enable()
