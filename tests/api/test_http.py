"""HTTP behaviour of the real server: keep-alive connections are reused across requests."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.support import servers


def _read_response(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[:length], rest[length:]


def test_one_connection_serves_many_requests(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ka.sqlite'}"
    with servers.live_server(url) as endpoint:
        port = int(endpoint.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            buf = b""
            for i in range(5):
                body = f'{{"network": {{"name": "ka{i}"}}}}'.encode()
                sock.sendall(b"POST /v2.0/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                head, payload, buf = _read_response(sock, buf)
                assert head.startswith(b"HTTP/1.1 201"), head
                assert b"connection: close" not in head.lower()
            sock.sendall(b"GET /v2.0/networks HTTP/1.1\r\nHost: x\r\n\r\n")
            head, payload, buf = _read_response(sock, buf)
            assert payload.count(b'"name":"ka') == 5
        # an ordinary client pool keeps using its connection too
        with httpx.Client(base_url=endpoint) as client:
            first = client.get("/v2.0/networks")
            stream_id = first.extensions["network_stream"]
            for _ in range(10):
                assert client.get("/v2.0/networks").extensions["network_stream"] is stream_id
