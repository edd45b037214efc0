"""A synchronous test client for the ASGI app: httpx over ASGITransport on a private event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx


class SyncClient:
    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        for hook in getattr(app, "on_startup", []):
            self._run(hook())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._run(self.client.request(method, path, **kw))

    def close(self) -> None:
        for hook in getattr(self.app, "on_shutdown", []):
            self._run(hook())
        self._run(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
