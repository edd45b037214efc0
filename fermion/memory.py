"""Memory tuning: glibc malloc (big list responses otherwise leave memory parked in per-thread arenas) and
the garbage collector."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

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
    _pause()
    try:
        yield
    finally:
        _unpause()


def _pause() -> None:
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1


def _unpause() -> None:
    global _pauses
    with _pause_lock:
        _pauses -= 1
        if _pauses == 0 and _resume:
            gc.enable()


_releaser: ThreadPoolExecutor | None = None
_releaser_pid = 0


def _executor() -> ThreadPoolExecutor:
    """The one thread that frees large responses, made on first use (and again in a forked child, which
    has not the parent's threads)."""
    global _releaser, _releaser_pid
    if _releaser is None or _releaser_pid != os.getpid():
        _releaser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fermion-free")
        _releaser_pid = os.getpid()
    return _releaser


def wait_released(timeout: float = 60) -> None:
    """Wait until what release_later was given so far is freed."""
    _executor().submit(lambda: None).result(timeout)


def release_later(box: list[Any]) -> None:
    """Free what the list `box` holds (a large response's dicts) on a background thread, once the caller
    has answered: freeing 10k ports' objects takes a tenth of the list's time, and need not delay the
    answer. The caller holds no other reference to them. The collector stays paused until they are gone (walking
    them is what the pause avoids), and the memory is then given back to the OS."""
    _pause()
    try:
        _executor().submit(_release, box)
    except RuntimeError:  # the interpreter is shutting down: free them here
        _release(box)


def _release(box: list[Any]) -> None:
    try:
        box.clear()
    finally:
        _unpause()
    trim()
