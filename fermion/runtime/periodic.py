"""A server-side task run every so often in a thread of its own (the API's threads keep serving)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, fn: Callable[[], Any], interval: float, delay: float) -> None:
        """fn runs `delay` seconds after start(), then every `interval` seconds until stop()."""
        self.name = name
        self.fn = fn
        self.interval = interval
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        wait = self.delay
        while not self._stop.wait(wait):
            try:
                self.fn()
            except Exception:  # noqa: BLE001 - the next round tries again
                LOG.exception("%s failed", self.name)
            wait = self.interval
