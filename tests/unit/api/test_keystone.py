"""KeystoneAuthenticator against a real HTTP fake Keystone (tests/support/fake_keystone.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx
import pytest

from fermion.api.keystone import (
    KeystoneAuthenticator,
    KeystoneSettings,
    KeystoneUnavailable,
    Unauthorized,
)
from fermion.context import Context
from tests.support.fake_keystone import FakeKeystone

T = TypeVar("T")

SERVICE_USER = "fermion"
SERVICE_PASSWORD = "fermion-secret"


@dataclass
class Cloud:
    ks: FakeKeystone
    url: str

    def settings(self, **overrides: object) -> KeystoneSettings:
        base = KeystoneSettings(auth_url=self.url, username=SERVICE_USER, password=SERVICE_PASSWORD)
        return replace(base, **overrides)  # type: ignore[arg-type]

    def alice(self, **kwargs: object) -> str:
        return self.ks.issue_token("alice", "demo", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    ks = FakeKeystone()
    ks.add_project("service", id="service-project")
    ks.add_project("demo", id="demo-project")
    ks.add_user(SERVICE_USER, SERVICE_PASSWORD, roles={"service": ["service"]}, id="fermion-user")
    ks.add_user("alice", "alice-pw", roles={"demo": ["member", "Reader"]}, id="alice-user")
    with ks.serve() as url:
        yield Cloud(ks, url)


def run(settings: KeystoneSettings, body: Callable[[KeystoneAuthenticator], Awaitable[T]]) -> T:
    async def main() -> T:
        async with KeystoneAuthenticator(settings) as auth:
            return await body(auth)

    return asyncio.run(main())


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the happy path -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/v3", "/v3/"])
def test_valid_token_gives_context(cloud: Cloud, suffix: str) -> None:
    token = cloud.alice()
    ctx = run(cloud.settings(auth_url=cloud.url + suffix), lambda a: a.authenticate(token, "req-1"))
    assert ctx == Context(
        project_id="demo-project",
        user_id="alice-user",
        roles=frozenset({"member", "reader"}),
        request_id="req-1",
    )
    assert not ctx.is_admin
    assert cloud.ks.counters.issued == 1
    assert cloud.ks.counters.validations == 1


def test_admin_role_is_lowercased(cloud: Cloud) -> None:
    token = cloud.ks.issue_token("alice", "demo", roles=["Admin"])
    ctx = run(cloud.settings(), lambda a: a.authenticate(token, "req"))
    assert ctx.roles == frozenset({"admin"})
    assert ctx.is_admin


def test_unscoped_token_has_no_project(cloud: Cloud) -> None:
    token = cloud.ks.issue_token("alice")
    ctx = run(cloud.settings(), lambda a: a.authenticate(token, "req"))
    assert ctx.project_id is None
    assert ctx.user_id == "alice-user"
    assert ctx.roles == frozenset()


def test_custom_transport_is_used(cloud: Cloud) -> None:
    token = cloud.alice()

    async def main() -> Context:
        auth = KeystoneAuthenticator(cloud.settings(), transport=httpx.AsyncHTTPTransport(retries=0))
        await auth.start()
        try:
            return await auth.authenticate(token, "req")
        finally:
            await auth.close()

    assert asyncio.run(main()).user_id == "alice-user"


# -- rejection ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "   ", "has spaces", "nön-ascii", "x" * 9000])
def test_missing_or_malformed_token_is_unauthorized_without_asking(cloud: Cloud, token: str | None) -> None:
    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(Unauthorized):
            await auth.authenticate(token, "req")

    run(cloud.settings(), body)
    assert cloud.ks.counters.issued == 0
    assert cloud.ks.counters.validations == 0


def test_unknown_token_is_unauthorized_and_negatively_cached(cloud: Cloud) -> None:
    async def body(auth: KeystoneAuthenticator) -> None:
        for _ in range(3):
            with pytest.raises(Unauthorized):
                await auth.authenticate("gAAAAAnot-a-real-token", "req")

    run(cloud.settings(), body)
    assert cloud.ks.counters.validations == 1


def test_negative_cache_expires(cloud: Cloud) -> None:
    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(Unauthorized):
            await auth.authenticate("bogus", "req")
        await asyncio.sleep(0.25)
        with pytest.raises(Unauthorized):
            await auth.authenticate("bogus", "req")

    async def main() -> None:
        async with KeystoneAuthenticator(cloud.settings(), negative_cache_seconds=0.1) as auth:
            await body(auth)

    asyncio.run(main())
    assert cloud.ks.counters.validations == 2


def test_expired_token_is_unauthorized(cloud: Cloud) -> None:
    token = cloud.alice()
    cloud.ks.expire(token)

    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(Unauthorized):
            await auth.authenticate(token, "req")

    run(cloud.settings(), body)


def test_revoked_token_is_unauthorized(cloud: Cloud) -> None:
    token = cloud.alice()
    cloud.ks.revoke(token)

    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(Unauthorized):
            await auth.authenticate(token, "req")

    run(cloud.settings(), body)


# -- caching ------------------------------------------------------------------------


def test_second_call_is_served_from_cache(cloud: Cloud) -> None:
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> tuple[Context, Context]:
        return await auth.authenticate(token, "req-1"), await auth.authenticate(token, "req-2")

    first, second = run(cloud.settings(), body)
    assert cloud.ks.counters.validations == 1
    assert first.request_id == "req-1"
    assert second.request_id == "req-2"
    assert replace(first, request_id="") == replace(second, request_id="")


def test_cache_expiry_is_honoured(cloud: Cloud) -> None:
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> None:
        await auth.authenticate(token, "req")
        await auth.authenticate(token, "req")
        assert cloud.ks.counters.validations == 1
        # Revoked in Keystone: still accepted while cached, rejected once the entry runs out.
        cloud.ks.revoke(token)
        await auth.authenticate(token, "req")
        await asyncio.sleep(0.3)
        with pytest.raises(Unauthorized):
            await auth.authenticate(token, "req")

    run(cloud.settings(cache_seconds=0.2), body)
    assert cloud.ks.counters.validations == 2


def test_token_expiry_bounds_the_cache(cloud: Cloud) -> None:
    token = cloud.alice(ttl=0.5)

    async def body(auth: KeystoneAuthenticator) -> None:
        await auth.authenticate(token, "req")
        await asyncio.sleep(0.7)
        with pytest.raises(Unauthorized):
            await auth.authenticate(token, "req")

    run(cloud.settings(cache_seconds=60), body)
    assert cloud.ks.counters.validations == 2


def test_clear_cache(cloud: Cloud) -> None:
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> None:
        await auth.authenticate(token, "req")
        auth.clear_cache()
        await auth.authenticate(token, "req")

    run(cloud.settings(), body)
    assert cloud.ks.counters.validations == 2


def test_cache_size_is_bounded(cloud: Cloud) -> None:
    tokens = [cloud.alice() for _ in range(3)]

    async def main() -> None:
        async with KeystoneAuthenticator(cloud.settings(), max_cache_entries=2) as auth:
            for token in tokens:
                await auth.authenticate(token, "req")
            await auth.authenticate(tokens[2], "req")  # newest: cached
            await auth.authenticate(tokens[0], "req")  # oldest: evicted

    asyncio.run(main())
    assert cloud.ks.counters.validations == 4


# -- the service token --------------------------------------------------------------


def test_service_token_is_reused(cloud: Cloud) -> None:
    tokens = [cloud.alice() for _ in range(3)]

    async def body(auth: KeystoneAuthenticator) -> None:
        for token in tokens:
            await auth.authenticate(token, "req")

    run(cloud.settings(), body)
    assert cloud.ks.counters.issued == 1
    assert cloud.ks.counters.validations == 3


def test_service_token_renewed_after_revocation(cloud: Cloud) -> None:
    first, second = cloud.alice(), cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> Context:
        await auth.authenticate(first, "req")
        assert cloud.ks.revoke_user_tokens(SERVICE_USER) == 1
        return await auth.authenticate(second, "req")

    ctx = run(cloud.settings(), body)
    assert ctx.user_id == "alice-user"
    assert cloud.ks.counters.issued == 2
    assert cloud.ks.counters.validations == 3  # first, second (401), second again
    assert len(cloud.ks.tokens_of(SERVICE_USER)) == 1


def test_service_token_renewed_before_it_expires(cloud: Cloud) -> None:
    cloud.ks.token_ttl = 1.0  # the service token; alice's tokens get their own ttl
    first, second = cloud.alice(ttl=60), cloud.alice(ttl=60)

    async def body(auth: KeystoneAuthenticator) -> None:
        await auth.authenticate(first, "req")
        await asyncio.sleep(0.6)  # past half of the service token's life
        await auth.authenticate(second, "req")

    run(cloud.settings(), body)
    assert cloud.ks.counters.issued == 2
    assert cloud.ks.counters.validations == 2  # no 401 round trip was needed


def test_bad_service_credentials_are_unavailable_not_unauthorized(cloud: Cloud) -> None:
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(KeystoneUnavailable, match="service credentials"):
            await auth.authenticate(token, "req")

    run(cloud.settings(password="wrong"), body)
    assert cloud.ks.counters.validations == 0


def test_service_user_without_validator_role(cloud: Cloud) -> None:
    cloud.ks.add_user("weak", "weak-pw", roles={"service": ["member"]})
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(KeystoneUnavailable, match="403"):
            await auth.authenticate(token, "req")

    run(cloud.settings(username="weak", password="weak-pw"), body)


# -- Keystone trouble ---------------------------------------------------------------


def test_keystone_unreachable() -> None:
    settings = KeystoneSettings(auth_url=closed_port_url(), username=SERVICE_USER, password=SERVICE_PASSWORD)

    async def body(auth: KeystoneAuthenticator) -> None:
        with pytest.raises(KeystoneUnavailable):
            await auth.authenticate("some-token", "req")

    run(settings, body)


def test_keystone_goes_away_after_start(cloud: Cloud) -> None:
    ks = FakeKeystone()
    ks.add_project("service")
    ks.add_user(SERVICE_USER, SERVICE_PASSWORD, roles={"service": ["service"]})
    ks.add_project("demo")
    ks.add_user("alice", "pw", roles={"demo": ["member"]})
    first, second = ks.issue_token("alice", "demo"), ks.issue_token("alice", "demo")

    async def main() -> None:
        with ks.serve() as url:
            auth = KeystoneAuthenticator(replace(cloud.settings(), auth_url=url))
            await auth.start()
            await auth.authenticate(first, "req")
        try:
            await auth.authenticate(first, "req")  # cached: Keystone not needed
            with pytest.raises(KeystoneUnavailable):
                await auth.authenticate(second, "req")
        finally:
            await auth.close()

    asyncio.run(main())


def test_keystone_server_error_is_unavailable_and_not_cached(cloud: Cloud) -> None:
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> Context:
        await auth.authenticate(cloud.alice(), "warm-up")  # obtain the service token
        cloud.ks.fail_status = 503
        with pytest.raises(KeystoneUnavailable, match="503"):
            await auth.authenticate(token, "req")
        cloud.ks.fail_status = None
        return await auth.authenticate(token, "req")

    assert run(cloud.settings(), body).user_id == "alice-user"


def test_keystone_timeout_is_unavailable(cloud: Cloud) -> None:
    cloud.ks.validation_delay = 1.0
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> None:
        started = time.monotonic()
        with pytest.raises(KeystoneUnavailable, match="timed out"):
            await auth.authenticate(token, "req")
        assert time.monotonic() - started < 0.9

    run(cloud.settings(timeout=0.2), body)


def test_authenticate_before_start_is_an_error(cloud: Cloud) -> None:
    async def main() -> None:
        auth = KeystoneAuthenticator(cloud.settings())
        with pytest.raises(RuntimeError):
            await auth.authenticate(cloud.alice(), "req")

    asyncio.run(main())
    assert cloud.ks.counters.issued == 0


# -- concurrency ----------------------------------------------------------------------


def test_concurrent_validations_of_one_token_share_a_request(cloud: Cloud) -> None:
    cloud.ks.validation_delay = 0.2
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> list[Context]:
        return await asyncio.gather(*(auth.authenticate(token, f"req-{i}") for i in range(10)))

    contexts = run(cloud.settings(), body)
    assert cloud.ks.counters.validations == 1
    assert cloud.ks.counters.issued == 1
    assert [c.request_id for c in contexts] == [f"req-{i}" for i in range(10)]
    assert {c.user_id for c in contexts} == {"alice-user"}


def test_concurrent_invalid_token_shares_a_request(cloud: Cloud) -> None:
    cloud.ks.validation_delay = 0.2

    async def body(auth: KeystoneAuthenticator) -> list[object]:
        return await asyncio.gather(
            *(auth.authenticate("bogus", "req") for _ in range(5)), return_exceptions=True
        )

    results = run(cloud.settings(), body)
    assert all(isinstance(r, Unauthorized) for r in results)
    assert cloud.ks.counters.validations == 1


def test_concurrent_distinct_tokens_share_one_service_token(cloud: Cloud) -> None:
    tokens = [cloud.alice() for _ in range(5)]

    async def body(auth: KeystoneAuthenticator) -> list[Context]:
        return await asyncio.gather(*(auth.authenticate(t, "req") for t in tokens))

    assert len(run(cloud.settings(), body)) == 5
    assert cloud.ks.counters.issued == 1
    assert cloud.ks.counters.validations == 5


def test_cancelled_caller_does_not_cancel_shared_validation(cloud: Cloud) -> None:
    cloud.ks.validation_delay = 0.2
    token = cloud.alice()

    async def body(auth: KeystoneAuthenticator) -> Context:
        impatient = asyncio.ensure_future(auth.authenticate(token, "impatient"))
        patient = asyncio.ensure_future(auth.authenticate(token, "patient"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        ctx = await patient
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return ctx

    assert run(cloud.settings(), body).request_id == "patient"
    assert cloud.ks.counters.validations == 1


# -- the fake itself ------------------------------------------------------------------


def test_fake_keystone_speaks_v3(cloud: Cloud) -> None:
    with httpx.Client(base_url=cloud.url) as http:
        version = http.get("/v3").json()["version"]
        assert version["id"].startswith("v3.")
        assert version["status"] == "stable"

        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "alice", "domain": {"name": "Default"}, "password": "alice-pw"}
                    },
                },
                "scope": {"project": {"name": "demo", "domain": {"id": "default"}}},
            }
        }
        issued = http.post("/v3/auth/tokens", json=body)
        assert issued.status_code == 201
        token = issued.headers["X-Subject-Token"]
        doc = issued.json()["token"]
        assert doc["project"]["id"] == "demo-project"
        assert doc["user"]["domain"] == {"id": "default", "name": "Default"}
        assert {r["name"] for r in doc["roles"]} == {"member", "Reader"}
        assert doc["catalog"] and doc["methods"] == ["password"]

        # Users may validate their own token; a bad X-Auth-Token is 401, an unknown subject 404.
        own = http.get("/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert own.status_code == 200
        assert own.json()["token"]["expires_at"].endswith("Z")
        bad_auth = http.get("/v3/auth/tokens", headers={"X-Auth-Token": "nope", "X-Subject-Token": token})
        assert bad_auth.status_code == 401
        unknown = http.get("/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": "nope"})
        assert unknown.status_code == 404

        body["auth"]["identity"]["password"]["user"]["password"] = "wrong"  # type: ignore[index]
        assert http.post("/v3/auth/tokens", json=body).status_code == 401
