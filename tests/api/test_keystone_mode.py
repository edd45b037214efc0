"""A Fermion server in keystone mode: tokens decide the project and roles; `/` needs no token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import servers
from tests.support.fake_keystone import FakeKeystone, sample_cloud


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[FakeKeystone, str]]:
    ks = sample_cloud()
    with ks.serve() as ks_url:
        config = tmp_path / "fermion.toml"
        config.write_text(f"""
[auth]
strategy = "keystone"

[keystone]
auth_url = "{ks_url}/v3"
username = "neutron"
password = "neutron-pw"
project_name = "service"
cache_seconds = 30
""")
        url = f"sqlite:///{tmp_path / 'ks.sqlite'}"
        with servers.live_server(url, extra_env={"FERMION_CONFIG": str(config)}) as endpoint:
            yield ks, endpoint


def test_tokens_carry_project_and_roles(cloud: tuple[FakeKeystone, str]) -> None:
    ks, endpoint = cloud
    assert httpx.get(endpoint + "/").status_code == 200  # discovery without a token, as in Neutron
    assert httpx.get(endpoint + "/v2.0/networks").status_code == 401
    assert httpx.get(endpoint + "/v2.0/networks", headers={"X-Auth-Token": "forged"}).status_code == 401
    alice = {"X-Auth-Token": ks.issue_token("alice", "demo")}
    r = httpx.post(endpoint + "/v2.0/networks", json={"network": {"name": "a"}}, headers=alice)
    assert r.status_code == 201, r.text
    assert r.json()["network"]["project_id"] == "demo-project"
    # noauth headers mean nothing in keystone mode
    spoof = {**alice, "X-Project-Id": "other-project", "X-Roles": "admin"}
    assert httpx.get(endpoint + "/v2.0/networks", headers=spoof).json()["networks"][0]["project_id"] == \
        "demo-project"
    bob = {"X-Auth-Token": ks.issue_token("bob", "other")}
    assert httpx.get(endpoint + "/v2.0/networks", headers=bob).json()["networks"] == []
    r = httpx.post(endpoint + "/v2.0/networks", json={"network": {"name": "b"}}, headers=bob)
    assert r.status_code == 403
    assert r.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
    expired = ks.issue_token("alice", "demo")
    ks.expire(expired)
    assert httpx.get(endpoint + "/v2.0/networks", headers={"X-Auth-Token": expired}).status_code == 401
