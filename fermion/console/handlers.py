"""/ui: the console's static files, who the caller is (/ui/session), a Keystone log-in (/ui/login) and the live
event stream (/ui/events), authenticated as the API is (docs/console.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from fermion.api.auth import Authenticator
from fermion.api.autherrors import KeystoneUnavailable, Unauthorized
from fermion.console.feed import ChangeFeed, Subscriber
from fermion.context import Context

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TYPES = {"html": b"text/html; charset=utf-8", "css": b"text/css; charset=utf-8",
         "js": b"text/javascript; charset=utf-8", "svg": b"image/svg+xml", "png": b"image/png"}
# the page may load only what this server serves: nothing from the internet, nothing inline
POLICY = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
KEEPALIVE = 15.0  # seconds of silence after which a stream gets a comment line (proxies close idle ones)
STREAM_SECONDS = 30.0  # a stream ends then and the page opens another: a stopping server waits no longer
MAX_LOGIN_BODY = 4096


@dataclass(frozen=True)
class AuthInfo:
    """What the log-in page needs to know: the strategy and, with noauth, who a request without headers is."""

    strategy: str
    default_project_id: str = ""
    default_roles: tuple[str, ...] = ()


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    folder = resources.files("fermion.console") / "static"
    out = {}
    for entry in folder.iterdir():
        ext = entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and ext in TYPES:
            out[entry.name] = (entry.read_bytes(), TYPES[ext])
    return out


def _json(status: int, body: Any) -> tuple[int, bytes, bytes]:
    return status, orjson.dumps(body), b"application/json"


def _unauthorized(message: str) -> tuple[int, bytes, bytes]:
    return _json(401, {"error": {"code": 401, "title": "Unauthorized", "message": message}})


def _fault(status: int, kind: str, message: str) -> tuple[int, bytes, bytes]:
    return _json(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class Console:
    """The ASGI handler of every path under /ui (FermionApp hands them over before its own pipeline)."""

    def __init__(self, feed: ChangeFeed, authenticate: Authenticator, auth: AuthInfo, keystone: Any = None,
                 stream_seconds: float = STREAM_SECONDS) -> None:
        self.feed = feed
        self.authenticate = authenticate
        self.auth = auth
        self.keystone = keystone  # api.keystone.KeystoneAuthenticator in keystone mode
        self.stream_seconds = stream_seconds
        self.files = _static_files()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        method = scope["method"]
        name = path[len("/ui/"):] if path.startswith("/ui/") else None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if name is None:  # /ui: the page's relative links need the slash
            await self._send(send, 308, b"", b"text/plain", [(b"location", b"/ui/")])
            return
        if name == "events" and method == "GET":
            await self._events(headers, receive, send)
            return
        if name == "login" and method == "POST":
            await self._send(send, *await self._login(await self._body(receive)))
            return
        if name == "session" and method == "GET":
            await self._send(send, *await self._session(headers))
            return
        if name == "config.json" and method == "GET":
            await self._send(send, *_json(200, {"auth": self.auth.strategy,
                                                "default_project_id": self.auth.default_project_id,
                                                "default_roles": list(self.auth.default_roles)}))
            return
        found = self.files.get(name or "index.html")
        if found is None:
            await self._send(send, *_fault(404, "HTTPNotFound", "The resource could not be found."))
        elif method not in ("GET", "HEAD"):
            await self._send(send, *_fault(405, "HTTPMethodNotAllowed", f"The method {method} is not allowed"))
        else:
            body, content_type = found
            await self._send(send, 200, body if method == "GET" else b"", content_type,
                             length=len(body))

    async def _send(self, send: Send, status: int, body: bytes, content_type: bytes,
                    extra: list[tuple[bytes, bytes]] | None = None, length: int | None = None) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body) if length is None
                                                                            else length).encode()),
                   (b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"),
                   (b"content-security-policy", POLICY), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _body(receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_LOGIN_BODY:
                return b""
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _identify(self, headers: dict[str, str]) -> Context | tuple[int, bytes, bytes]:
        try:
            return await self.authenticate(headers, f"req-{uuid.uuid4()}")
        except Unauthorized as err:
            return _unauthorized(str(err) or "The request you have made requires authentication.")
        except KeystoneUnavailable as err:
            return _fault(503, "ServiceUnavailable", f"Identity service unavailable: {err}")

    async def _session(self, headers: dict[str, str]) -> tuple[int, bytes, bytes]:
        ctx = await self._identify(headers)
        if not isinstance(ctx, Context):
            return ctx
        return _json(200, {"project_id": ctx.project_id, "user_id": ctx.user_id, "roles": sorted(ctx.roles),
                           "admin": ctx.is_admin})

    async def _login(self, raw: bytes) -> tuple[int, bytes, bytes]:
        if self.keystone is None:
            return _fault(400, "BadRequest", "This server does not use Keystone: choose a project instead.")
        try:
            body = orjson.loads(raw)
            fields = [body[k] for k in ("username", "password", "project")]
            domain = body.get("domain") or "Default"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _fault(400, "BadRequest", "username, password and project are required")
        if not all(isinstance(f, str) and f for f in [*fields, domain]):
            return _fault(400, "BadRequest", "username, password and project are required")
        try:
            token, doc = await self.keystone.password_token(*fields, domain)
        except Unauthorized as err:
            return _unauthorized(str(err))
        except KeystoneUnavailable as err:
            return _fault(503, "ServiceUnavailable", f"Identity service unavailable: {err}")
        project = doc.get("project") or {}
        roles = sorted(r.get("name", "").lower() for r in doc.get("roles") or [] if isinstance(r, dict))
        return _json(201, {"token": token, "project_id": project.get("id"), "project_name": project.get("name"),
                           "user_id": (doc.get("user") or {}).get("id"), "roles": roles,
                           "expires_at": doc.get("expires_at")})

    async def _events(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        """Server-sent events: `hello` with who listens, then `change` with a list of {kind, id}."""
        ctx = await self._identify(headers)
        if not isinstance(ctx, Context):
            await self._send(send, *ctx)
            return
        sub = self.feed.subscribe(ctx.project_id, ctx.is_admin)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff")]})
            hello = {"project_id": ctx.project_id, "admin": ctx.is_admin}
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"retry: 1000\nevent: hello\ndata: " + orjson.dumps(hello) + b"\n\n"})
            await self._stream(sub, gone, send)
        finally:
            self.feed.unsubscribe(sub)
            gone.cancel()

    async def _stream(self, sub: Subscriber, gone: asyncio.Future[Any], send: Send) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.stream_seconds
        while not gone.done() and not self.feed.closed:
            left = until - loop.time()
            if left <= 0:
                break
            get: asyncio.Future[Any] = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({get, gone}, timeout=min(KEEPALIVE, left),
                                         return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                if not gone.done() and loop.time() < until:
                    await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
                continue
            batch = get.result()
            if batch is None:  # the feed closed
                break
            while not sub.queue.empty():  # what queued meanwhile goes in the same message
                more = sub.queue.get_nowait()
                if more is None:
                    break
                batch += more
            seen = {(c.kind, c.id): {"kind": c.kind, "id": c.id} for c in batch}
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"event: change\ndata: " + orjson.dumps(list(seen.values())) + b"\n\n"})
        if not gone.done():
            await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
