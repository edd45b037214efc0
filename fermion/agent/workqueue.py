"""A coalescing work queue: keys (network ids) marked dirty any number of times are handled once; a full
resync absorbs every pending key."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._keys: set[str] = set()
        self._full = False
        self._closed = False

    def add(self, keys: Iterable[str]) -> None:
        with self._cond:
            before = len(self._keys)
            self._keys.update(keys)
            if len(self._keys) != before:
                self._cond.notify()

    def add_full(self) -> None:
        with self._cond:
            self._full = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float) -> tuple[bool, set[str]] | None:
        """Wait for work: (full, keys). On timeout (full, keys) = (True, ...): periodic resync. None: closed."""
        with self._cond:
            if not (self._full or self._keys or self._closed):
                self._cond.wait(timeout)
            if self._closed:
                return None
            full = self._full or not self._keys
            keys, self._keys, self._full = self._keys, set(), False
            return full, keys
