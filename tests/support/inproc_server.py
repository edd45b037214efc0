"""Embedded mode for tests: the real app under uvicorn in a thread of the test process, so in-process
agents (threads too) share its in-process transport."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from tests.support.servers import free_port


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    port = free_port()
    # keep-alive as `fermion serve` has it: with uvicorn's 5 s, a lab test idle that long (an instance taking
    # its DHCP lease) could reuse a connection the server was closing: "connection reset by peer"
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none",
                            timeout_keep_alive=75)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fermion-test-server", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(endpoint + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("embedded test server did not start")
        time.sleep(0.05)
    try:
        yield endpoint
    finally:
        server.should_exit = True
        thread.join(15)
