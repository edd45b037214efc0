"""Memory tuning: glibc malloc (big list responses otherwise leave memory parked in per-thread arenas) and
the garbage collector."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_ARENA_MAX = -8
_libc: ctypes.CDLL | None = None
_pause_lock = threading.Lock()
_pauses = 0
_resume = False  # whether the collector was on when the first pause began


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


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collections while a large response is built. Its hundred thousand dicts and lists hold no
    cycles (reference counts free them), yet each collection walks them all: a fifth of the CPU of a
    10k-port list. Pauses from several threads nest; the collector resumes when the last one ends."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
