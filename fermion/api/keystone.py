"""Keystone v3 token validation for the API layer.

A request arrives with ``X-Auth-Token: <user token>``.  Fermion, acting as a
service user, asks Keystone whether that token is valid (``GET /v3/auth/tokens``
with its own token in ``X-Auth-Token`` and the user's in ``X-Subject-Token``)
and turns the answer into a :class:`~fermion.context.Context`.

Results are cached per token: valid tokens for ``min(cache_seconds, time left
before the token expires)``, invalid ones for a few seconds so that a flood of
bad tokens does not turn into a flood of Keystone requests.  As with any
caching validator, a token revoked in Keystone keeps working here until its
cache entry runs out (at most ``cache_seconds``).

Concurrent requests carrying the same token share one Keystone round trip.

Errors:

* :class:`Unauthorized` -- the token is missing, malformed, unknown, revoked or
  expired (the API answers 401).
* :class:`KeystoneUnavailable` -- Keystone could not give an answer: it is
  unreachable, timed out, answered 5xx or nonsense, or rejected Fermion's own
  service credentials (the API answers 503; the user's token is not to blame).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from fermion.api.autherrors import KeystoneUnavailable, Unauthorized
from fermion.context import Context

__all__ = [
    "KeystoneAuthenticator",
    "KeystoneSettings",
    "KeystoneUnavailable",
    "Unauthorized",
]

LOG = logging.getLogger(__name__)

# Printable ASCII without spaces; real Keystone tokens (Fernet, JWS, UUID) fit
# comfortably.  Anything else cannot be valid and must not reach an HTTP header.
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,8192}")

# How long before the service token's expiry it is replaced.
_SERVICE_TOKEN_MARGIN = 30.0



@dataclass(frozen=True)
class KeystoneSettings:
    auth_url: str
    username: str
    password: str
    project_name: str = "service"
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    cache_seconds: float = 60.0
    timeout: float = 5.0


@dataclass(frozen=True)
class _CacheEntry:
    context: Context | None  # None: the token is known to be invalid
    deadline: float  # monotonic clock


@dataclass
class _ServiceToken:
    value: str
    renew_at: float  # monotonic clock


def _v3_base(auth_url: str) -> str:
    """``http://ks:5000``, ``http://ks:5000/``, ``http://ks:5000/v3/`` -> ``http://ks:5000/v3``."""
    base = auth_url.strip().rstrip("/")
    if not base:
        raise ValueError("Keystone auth_url is empty")
    if base.rsplit("/", 1)[-1].lower() not in ("v3", "v3.0"):
        base += "/v3"
    return base


def _parse_time(value: object) -> datetime:
    """Keystone timestamps look like ``2024-05-01T12:00:00.000000Z``."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:  # Keystone means UTC even when it says nothing
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _seconds_left(expires_at: object) -> float:
    return (_parse_time(expires_at) - datetime.now(UTC)).total_seconds()


def _cache_key(token: str) -> str:
    # Do not keep bearer tokens themselves as dictionary keys.
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class KeystoneAuthenticator:
    """Validates user tokens against Keystone v3 and caches the verdicts.

    The constructor does no I/O; call :meth:`start` before :meth:`authenticate`
    and :meth:`close` when done (or use ``async with``).  ``transport`` lets
    callers substitute an httpx transport (proxies, TLS settings, tests).
    """

    def __init__(
        self,
        settings: KeystoneSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        negative_cache_seconds: float = 3.0,
        max_cache_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._base = _v3_base(settings.auth_url)
        self._transport = transport
        self._negative_ttl = max(0.0, min(negative_cache_seconds, settings.cache_seconds))
        self._max_entries = max(1, max_cache_entries)
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._service_token: _ServiceToken | None = None
        self._service_lock = asyncio.Lock()
        self._cache: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Context | None]] = {}

    @property
    def identity_url(self) -> str:
        """The Keystone v3 base URL in use (always ending in ``/v3``)."""
        return self._base

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        # Made here rather than in __init__ so it belongs to the loop that runs us.
        self._service_lock = asyncio.Lock()
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self.settings.timeout),
            headers={"Accept": "application/json", "User-Agent": "fermion-keystone-auth"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        client, self._client = self._client, None
        self._service_token = None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> KeystoneAuthenticator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def clear_cache(self) -> None:
        """Forget every cached verdict (e.g. after a known revocation)."""
        self._cache.clear()

    # -- the public question -------------------------------------------------

    async def authenticate(self, token: str | None, request_id: str) -> Context:
        """The identity behind ``token``; raises :class:`Unauthorized` or :class:`KeystoneUnavailable`."""
        if token is None:
            raise Unauthorized("authentication required: no X-Auth-Token")
        token = token.strip()
        if not token:
            raise Unauthorized("authentication required: empty X-Auth-Token")
        if not _TOKEN_RE.fullmatch(token):
            raise Unauthorized("the X-Auth-Token is malformed")
        if self._client is None:
            raise RuntimeError("KeystoneAuthenticator.start() has not been called")

        key = _cache_key(token)
        entry = self._cache.get(key)
        if entry is not None:
            if entry.deadline > self._clock():
                return self._verdict(entry.context, request_id)
            del self._cache[key]

        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._validate(key, token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget_inflight(key, done))
        # shield: a caller that gives up must not cancel the lookup others wait on
        identity = await asyncio.shield(task)
        return self._verdict(identity, request_id)

    async def password_token(self, username: str, password: str, project_name: str,
                             domain_name: str = "Default") -> tuple[str, dict[str, Any]]:
        """A user's project-scoped token from their password (the console's log-in): the token and Keystone's
        token document. Raises Unauthorized for wrong credentials, KeystoneUnavailable when Keystone fails."""
        domain = {"name": domain_name}
        body = {"auth": {"identity": {"methods": ["password"], "password": {
                    "user": {"name": username, "domain": domain, "password": password}}},
                "scope": {"project": {"name": project_name, "domain": domain}}}}
        response = await self._send("POST", "/auth/tokens", params={"nocatalog": "1"}, json=body)
        if response.status_code in (400, 401, 403, 404):
            raise Unauthorized("the user name, password or project is not right")
        if response.status_code not in (200, 201):
            raise KeystoneUnavailable(f"Keystone authentication answered HTTP {response.status_code}")
        token = response.headers.get("X-Subject-Token")
        try:
            document = response.json()["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoneUnavailable(f"Keystone returned an unusable token document: {exc}") from exc
        if not token or not isinstance(document, dict):
            raise KeystoneUnavailable("Keystone issued a token without an X-Subject-Token header")
        return token, document

    # -- internals -----------------------------------------------------------

    @staticmethod
    def _verdict(identity: Context | None, request_id: str) -> Context:
        if identity is None:
            raise Unauthorized("the X-Auth-Token is not valid")
        return dataclasses.replace(identity, request_id=request_id)

    def _forget_inflight(self, key: str, task: asyncio.Task[Context | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned failure is not logged as lost

    def _remember(self, key: str, identity: Context | None, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = _CacheEntry(identity, self._clock() + ttl)
        self._cache.move_to_end(key)
        if len(self._cache) > self._max_entries:
            now = self._clock()
            for stale in [k for k, e in self._cache.items() if e.deadline <= now]:
                del self._cache[stale]
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)

    async def _validate(self, key: str, token: str) -> Context | None:
        """Ask Keystone about ``token``; cache and return its identity, or None if invalid."""
        service = await self._get_service_token()
        response = await self._check(service.value, token)
        if response.status_code == 401:
            # Our own token was refused (revoked, expired early, Keystone restarted
            # with new keys...): get a fresh one and ask once more.
            service = await self._get_service_token(stale=service)
            response = await self._check(service.value, token)

        status = response.status_code
        if status in (401, 404):
            self._remember(key, None, self._negative_ttl)
            return None
        if status == 403:
            raise KeystoneUnavailable(
                f"Keystone refused to let {self.settings.username!r} validate tokens (403); "
                "the service user needs the 'service' or 'admin' role"
            )
        if status != 200:
            raise KeystoneUnavailable(f"Keystone token validation answered HTTP {status}")

        try:
            identity, seconds_left = self._identity_from(response)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoneUnavailable(f"Keystone returned an unusable token document: {exc}") from exc
        if seconds_left <= 0:
            self._remember(key, None, self._negative_ttl)
            return None
        self._remember(key, identity, min(self.settings.cache_seconds, seconds_left))
        return identity

    @staticmethod
    def _identity_from(response: httpx.Response) -> tuple[Context, float]:
        body = response.json()
        if not isinstance(body, Mapping) or not isinstance(body.get("token"), Mapping):
            raise ValueError("no 'token' object")
        data: Mapping[str, Any] = body["token"]
        user = data.get("user")
        if not isinstance(user, Mapping) or not isinstance(user.get("id"), str):
            raise ValueError("no user id")
        project = data.get("project")
        project_id = project.get("id") if isinstance(project, Mapping) else None
        if project_id is not None and not isinstance(project_id, str):
            raise ValueError("project id is not a string")
        roles = data.get("roles") or []
        if not isinstance(roles, list):
            raise ValueError("roles is not a list")
        names = frozenset(
            r["name"].lower() for r in roles if isinstance(r, Mapping) and isinstance(r.get("name"), str)
        )
        identity = Context(project_id=project_id, user_id=user["id"], roles=names)
        return identity, _seconds_left(data.get("expires_at"))

    async def _check(self, service_token: str, token: str) -> httpx.Response:
        return await self._send(
            "GET",
            "/auth/tokens",
            params={"nocatalog": "1"},
            headers={"X-Auth-Token": service_token, "X-Subject-Token": token},
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        client = self._client
        if client is None:
            raise KeystoneUnavailable("the Keystone client is closed")
        try:
            return await client.request(method, self._base + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise KeystoneUnavailable(f"Keystone at {self._base} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise KeystoneUnavailable(f"Keystone at {self._base} is unreachable: {exc!r}") from exc

    async def _get_service_token(self, stale: _ServiceToken | None = None) -> _ServiceToken:
        """The current service token, fetching one if there is none, it is due, or it is ``stale``."""
        current = self._service_token
        if current is not None and current is not stale and current.renew_at > self._clock():
            return current
        async with self._service_lock:
            # Someone else may have renewed it while we waited for the lock.
            current = self._service_token
            if current is not None and current is not stale and current.renew_at > self._clock():
                return current
            self._service_token = None
            fresh = await self._issue_service_token()
            self._service_token = fresh
            return fresh

    async def _issue_service_token(self) -> _ServiceToken:
        s = self.settings
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": s.username,
                            "domain": {"name": s.user_domain_name},
                            "password": s.password,
                        }
                    },
                },
                "scope": {"project": {"name": s.project_name, "domain": {"name": s.project_domain_name}}},
            }
        }
        response = await self._send("POST", "/auth/tokens", params={"nocatalog": "1"}, json=body)
        if response.status_code in (401, 403):
            raise KeystoneUnavailable(
                f"Keystone rejected Fermion's service credentials for user {s.username!r} "
                f"(HTTP {response.status_code})"
            )
        if response.status_code not in (200, 201):
            raise KeystoneUnavailable(f"Keystone service authentication answered HTTP {response.status_code}")
        value = response.headers.get("X-Subject-Token")
        if not value:
            raise KeystoneUnavailable("Keystone issued a service token without an X-Subject-Token header")
        try:
            lifetime = _seconds_left(response.json()["token"]["expires_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoneUnavailable(f"Keystone returned an unusable service token document: {exc}") from exc
        if lifetime > 0:
            # Renew ahead of expiry; for very short-lived tokens, halfway through.
            renew_in = lifetime - min(_SERVICE_TOKEN_MARGIN, lifetime / 2)
        else:
            # Already "expired" by our clock: the clocks disagree.  Keystone accepted it,
            # so use it a while; a 401 on validation will replace it anyway.
            LOG.warning("Keystone service token expires_at is in the past; is the clock skewed?")
            renew_in = _SERVICE_TOKEN_MARGIN
        LOG.debug("obtained a Keystone service token valid for %.0fs", lifetime)
        return _ServiceToken(value=value, renew_at=self._clock() + renew_in)
