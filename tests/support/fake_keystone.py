"""A small, real-HTTP stand-in for Keystone's v3 token API, for tests.

Only what token validation needs is implemented:

* ``GET /v3`` -- the version document;
* ``POST /v3/auth/tokens`` -- password authentication, optionally scoped to a
  project, answering 201 with the token in ``X-Subject-Token``;
* ``GET /v3/auth/tokens`` -- validation of ``X-Subject-Token`` on behalf of a
  valid ``X-Auth-Token`` (401 if that one is bad, 404 if the subject is unknown,
  revoked or expired, 403 if the caller may not validate others' tokens);
* ``DELETE /v3/auth/tokens`` -- revocation.

Tests configure users, projects and role assignments, mint/revoke/expire tokens
directly, read request counters and can make the server misbehave::

    ks = FakeKeystone()
    ks.add_project("service"); ks.add_project("demo")
    ks.add_user("fermion", "secret", roles={"service": ["service"]})
    ks.add_user("alice", "pw", roles={"demo": ["member", "Reader"]})
    token = ks.issue_token("alice", "demo")
    with ks.serve() as url:   # http://127.0.0.1:<port>
        ...
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"

# Roles allowed to validate other users' tokens (Keystone's default policy).
_VALIDATOR_ROLES = frozenset({"admin", "service"})


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, title: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "title": title, "message": message}}, status_code=status)


@dataclass
class FakeProject:
    id: str
    name: str
    domain_id: str = DEFAULT_DOMAIN_ID


@dataclass
class FakeUser:
    id: str
    name: str
    password: str
    domain_id: str = DEFAULT_DOMAIN_ID
    # project id -> role names
    roles: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class FakeToken:
    value: str
    user_id: str
    project_id: str | None
    roles: list[str]
    issued_at: datetime
    expires_at: datetime
    methods: list[str]
    audit_id: str
    revoked: bool = False

    def is_valid(self) -> bool:
        return not self.revoked and self.expires_at > datetime.now(UTC)


@dataclass
class Counters:
    issued: int = 0  # POST /v3/auth/tokens requests (successful or not)
    validations: int = 0  # GET /v3/auth/tokens requests (whatever the answer)
    versions: int = 0  # GET /v3


class FakeKeystone:
    """In-memory Keystone v3 (tokens only), served by :meth:`serve`."""

    def __init__(self, token_ttl: float = 3600.0, region: str = "RegionOne") -> None:
        self.token_ttl = token_ttl
        self.region = region
        self.counters = Counters()
        # Test knobs, read by the handlers on every request.
        self.validation_delay = 0.0  # seconds to sleep before answering a validation
        self.fail_status: int | None = None  # answer every /v3 request with this status
        self.base_url = ""  # set while serving; used in links and the catalog
        self._lock = threading.Lock()
        self._domains = {DEFAULT_DOMAIN_ID: DEFAULT_DOMAIN_NAME}
        self._projects: dict[str, FakeProject] = {}
        self._users: dict[str, FakeUser] = {}
        self._tokens: dict[str, FakeToken] = {}
        self.app = Starlette(
            routes=[
                Route("/v3", self._version, methods=["GET"]),
                Route("/v3/", self._version, methods=["GET"]),
                Route("/v3/auth/tokens", self._issue, methods=["POST"]),
                Route("/v3/auth/tokens", self._validate, methods=["GET"]),
                Route("/v3/auth/tokens", self._revoke, methods=["DELETE"]),
            ]
        )

    # -- configuration from the test ------------------------------------------

    def add_domain(self, name: str, id: str | None = None) -> str:
        domain_id = id or uuid.uuid4().hex
        with self._lock:
            self._domains[domain_id] = name
        return domain_id

    def add_project(self, name: str, domain: str = DEFAULT_DOMAIN_NAME, id: str | None = None) -> str:
        project = FakeProject(id=id or uuid.uuid4().hex, name=name, domain_id=self._domain_id(domain))
        with self._lock:
            self._projects[project.id] = project
        return project.id

    def add_user(
        self,
        name: str,
        password: str,
        domain: str = DEFAULT_DOMAIN_NAME,
        roles: Mapping[str, Iterable[str]] | None = None,
        id: str | None = None,
    ) -> str:
        """Create a user; ``roles`` maps project names (or ids) to role names."""
        user = FakeUser(
            id=id or uuid.uuid4().hex, name=name, password=password, domain_id=self._domain_id(domain)
        )
        with self._lock:
            self._users[user.id] = user
        for project, names in (roles or {}).items():
            self.grant(name, project, *names)
        return user.id

    def grant(self, user: str, project: str, *roles: str) -> None:
        u = self._find_user(user)
        p = self._find_project(project)
        with self._lock:
            u.roles.setdefault(p.id, []).extend(r for r in roles if r not in u.roles.get(p.id, []))

    def issue_token(
        self,
        user: str,
        project: str | None = None,
        ttl: float | None = None,
        roles: Iterable[str] | None = None,
    ) -> str:
        """Mint a token without the password dance.  ``roles`` overrides the user's assignments."""
        u = self._find_user(user)
        p = self._find_project(project) if project is not None else None
        if roles is not None:
            role_names = list(roles)
        else:
            role_names = list(u.roles.get(p.id, [])) if p is not None else []
        return self._mint(u, p, role_names, ["password"], ttl).value

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens[token].revoked = True

    def expire(self, token: str) -> None:
        with self._lock:
            self._tokens[token].expires_at = datetime.now(UTC) - timedelta(seconds=1)

    def tokens_of(self, user: str, valid_only: bool = True) -> list[str]:
        """The tokens issued to ``user`` (name or id), oldest first."""
        u = self._find_user(user)
        with self._lock:
            return [
                t.value
                for t in self._tokens.values()
                if t.user_id == u.id and (t.is_valid() or not valid_only)
            ]

    def revoke_user_tokens(self, user: str) -> int:
        tokens = self.tokens_of(user)
        for token in tokens:
            self.revoke(token)
        return len(tokens)

    def reset_counters(self) -> None:
        self.counters = Counters()

    # -- serving --------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run under uvicorn on 127.0.0.1 (free port) in a thread; yields the base URL (no /v3)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-keystone"
        )
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("fake Keystone failed to start")
                time.sleep(0.01)
            self.base_url = f"http://127.0.0.1:{port}"
            yield self.base_url
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            self.base_url = ""

    # -- lookups ----------------------------------------------------------------

    def _domain_id(self, ref: str) -> str:
        with self._lock:
            if ref in self._domains:
                return ref
            for domain_id, name in self._domains.items():
                if name == ref:
                    return domain_id
        raise KeyError(f"no such domain: {ref}")

    def _find_user(self, ref: str, domain_id: str | None = None) -> FakeUser:
        with self._lock:
            if ref in self._users:
                return self._users[ref]
            for user in self._users.values():
                if user.name == ref and (domain_id is None or user.domain_id == domain_id):
                    return user
        raise KeyError(f"no such user: {ref}")

    def _find_project(self, ref: str, domain_id: str | None = None) -> FakeProject:
        with self._lock:
            if ref in self._projects:
                return self._projects[ref]
            for project in self._projects.values():
                if project.name == ref and (domain_id is None or project.domain_id == domain_id):
                    return project
        raise KeyError(f"no such project: {ref}")

    def _mint(
        self,
        user: FakeUser,
        project: FakeProject | None,
        roles: list[str],
        methods: list[str],
        ttl: float | None,
    ) -> FakeToken:
        now = datetime.now(UTC)
        token = FakeToken(
            value="gAAAAA" + secrets.token_urlsafe(48),
            user_id=user.id,
            project_id=project.id if project else None,
            roles=roles,
            issued_at=now,
            expires_at=now + timedelta(seconds=self.token_ttl if ttl is None else ttl),
            methods=methods,
            audit_id=secrets.token_urlsafe(16),
        )
        with self._lock:
            self._tokens[token.value] = token
        return token

    def _lookup_token(self, value: str | None) -> FakeToken | None:
        if not value:
            return None
        with self._lock:
            token = self._tokens.get(value)
        return token if token is not None and token.is_valid() else None

    # -- documents ----------------------------------------------------------------

    def _ref(self, id: str, name: str, domain_id: str) -> dict[str, Any]:
        return {"id": id, "name": name, "domain": {"id": domain_id, "name": self._domains[domain_id]}}

    def _catalog(self) -> list[dict[str, Any]]:
        base = self.base_url or "http://127.0.0.1"

        def endpoints(url: str) -> list[dict[str, Any]]:
            return [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, url + iface).hex,
                    "interface": iface,
                    "region": self.region,
                    "region_id": self.region,
                    "url": url,
                }
                for iface in ("public", "internal", "admin")
            ]

        return [
            {"id": "identity", "type": "identity", "name": "keystone", "endpoints": endpoints(base + "/v3")},
            {
                "id": "network",
                "type": "network",
                "name": "neutron",
                "endpoints": endpoints("http://127.0.0.1:9696"),
            },
        ]

    def _token_document(self, token: FakeToken, with_catalog: bool) -> dict[str, Any]:
        user = self._find_user(token.user_id)
        body: dict[str, Any] = {
            "methods": token.methods,
            "user": {**self._ref(user.id, user.name, user.domain_id), "password_expires_at": None},
            "audit_ids": [token.audit_id],
            "expires_at": _timestamp(token.expires_at),
            "issued_at": _timestamp(token.issued_at),
        }
        if token.project_id is not None:
            project = self._find_project(token.project_id)
            body["project"] = self._ref(project.id, project.name, project.domain_id)
            body["is_domain"] = False
            body["roles"] = [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, r).hex, "name": r} for r in token.roles]
            if with_catalog:
                body["catalog"] = self._catalog()
        return {"token": body}

    # -- handlers -------------------------------------------------------------------

    async def _version(self, request: Request) -> Response:
        self.counters.versions += 1
        if self.fail_status is not None:
            return _error(self.fail_status, "Failure", "fake Keystone was told to fail")
        base = self.base_url or str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "version": {
                    "id": "v3.14",
                    "status": "stable",
                    "updated": "2020-04-07T00:00:00Z",
                    "links": [{"rel": "self", "href": base + "/v3/"}],
                    "media-types": [
                        {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
                    ],
                }
            }
        )

    async def _issue(self, request: Request) -> Response:
        self.counters.issued += 1
        if self.fail_status is not None:
            return _error(self.fail_status, "Failure", "fake Keystone was told to fail")
        try:
            auth = (await request.json())["auth"]
            identity = auth["identity"]
            if "password" not in identity["methods"]:
                return _error(401, "Unauthorized", "Only the password method is supported here.")
            spec = identity["password"]["user"]
            user = self._resolve_user(spec)
            password = spec["password"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "Bad Request", "Malformed authentication request.")
        if user is None or not secrets.compare_digest(user.password.encode(), str(password).encode()):
            return _error(401, "Unauthorized", "The request you have made requires authentication.")

        project: FakeProject | None = None
        scope = auth.get("scope")
        if scope:
            try:
                project = self._resolve_project(scope["project"])
            except (KeyError, TypeError):
                return _error(400, "Bad Request", "Only project scope is supported here.")
            if project is None or not user.roles.get(project.id):
                return _error(401, "Unauthorized", "User has no access to the requested project.")
        roles = list(user.roles.get(project.id, [])) if project else []
        token = self._mint(user, project, roles, ["password"], None)
        document = self._token_document(token, with_catalog="nocatalog" not in request.query_params)
        return JSONResponse(document, status_code=201, headers={"X-Subject-Token": token.value})

    async def _validate(self, request: Request) -> Response:
        self.counters.validations += 1
        if self.validation_delay:
            await asyncio.sleep(self.validation_delay)
        if self.fail_status is not None:
            return _error(self.fail_status, "Failure", "fake Keystone was told to fail")
        caller = self._lookup_token(request.headers.get("X-Auth-Token"))
        if caller is None:
            return _error(401, "Unauthorized", "The request you have made requires authentication.")
        subject_value = request.headers.get("X-Subject-Token")
        if not subject_value:
            return _error(400, "Bad Request", "X-Subject-Token is required.")
        subject = self._lookup_token(subject_value)
        if subject is not None and caller.user_id != subject.user_id:
            if not _VALIDATOR_ROLES.intersection(r.lower() for r in caller.roles):
                return _error(403, "Forbidden", "You are not authorized to perform the requested action.")
        if subject is None:
            return _error(404, "Not Found", f"Could not find token: {subject_value[:16]}")
        document = self._token_document(subject, with_catalog="nocatalog" not in request.query_params)
        return JSONResponse(document, headers={"X-Subject-Token": subject.value})

    async def _revoke(self, request: Request) -> Response:
        caller = self._lookup_token(request.headers.get("X-Auth-Token"))
        if caller is None:
            return _error(401, "Unauthorized", "The request you have made requires authentication.")
        subject = self._lookup_token(request.headers.get("X-Subject-Token"))
        if subject is None:
            return _error(404, "Not Found", "Could not find token.")
        self.revoke(subject.value)
        return Response(status_code=204)

    def _resolve_user(self, spec: Mapping[str, Any]) -> FakeUser | None:
        try:
            if "id" in spec:
                return self._find_user(spec["id"])
            domain = spec["domain"]
            domain_id = self._domain_id(domain["id"] if "id" in domain else domain["name"])
            return self._find_user(spec["name"], domain_id)
        except KeyError:
            return None

    def _resolve_project(self, spec: Mapping[str, Any]) -> FakeProject | None:
        try:
            if "id" in spec:
                return self._find_project(spec["id"])
            domain = spec["domain"]
            domain_id = self._domain_id(domain["id"] if "id" in domain else domain["name"])
            return self._find_project(spec["name"], domain_id)
        except KeyError:
            return None


def sample_cloud() -> FakeKeystone:
    """The identities the keystone-mode tests share: Fermion's service user `neutron` (service and admin in
    project service), alice (member of demo) and bob (reader of other), with fixed ids."""
    ks = FakeKeystone()
    ks.add_project("service", id="service-project")
    ks.add_project("demo", id="demo-project")
    ks.add_project("other", id="other-project")
    ks.add_user("neutron", "neutron-pw", roles={"service": ["service", "admin"]}, id="neutron-user")
    ks.add_user("alice", "alice-pw", roles={"demo": ["member"]}, id="alice-user")
    ks.add_user("bob", "bob-pw", roles={"other": ["reader"]}, id="bob-user")
    return ks
