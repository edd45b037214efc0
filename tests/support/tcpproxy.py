"""A threaded TCP proxy for tests that need to cut a client off a shared server (RabbitMQ, a database)
without touching the server: point the client at start()'s port, then cut() and restore()."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._cut = False
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()  # every open client and upstream socket
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Listen on 127.0.0.1 (ephemeral port) and return the port."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)  # so the accept loop notices stop()
        self._listener = listener
        self._spawn(self._accept_loop)
        return int(listener.getsockname()[1])

    def cut(self) -> None:
        """Close every open connection; new ones are closed at once until restore()."""
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)  # wakes the pump thread, which closes it (closing here could race with its fd)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._stopping.set()
        self.cut()
        for thread in list(self._threads):
            thread.join(5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="tcpproxy", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with self._listener:
            while not self._stopping.is_set():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    accept = not self._cut and not self._stopping.is_set()
                    if accept:
                        self._sockets.add(client)
                if accept:
                    self._spawn(self._serve, client)
                else:
                    client.close()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close(client)
            return
        with self._lock:
            self._sockets.add(upstream)
            cut = self._cut
        if cut:  # cut while we were connecting
            _shutdown(upstream)
        upstream.settimeout(None)
        for sock in (client, upstream):  # forward small writes at once, as the endpoints would (no Nagle stalls)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(client, selectors.EVENT_READ)
                sel.register(upstream, selectors.EVENT_READ)
                while True:
                    for key, _ in sel.select():
                        src, dst = (client, upstream) if key.fileobj is client else (upstream, client)
                        data = src.recv(65536)
                        if not data:
                            return
                        dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(client, upstream)

    def _close(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
        for sock in sockets:
            _shutdown(sock)
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
