"""Browser tests of the web console: Debian's headless Chromium driven by Selenium (tests/support/browser.py).
Tests that need the browser skip, saying why, when chromium, chromedriver or selenium is missing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import Browser, browser_missing


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = browser_missing()
    if reason is not None:
        print(f"skipping the console's browser tests: {reason}")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="fermion-chromium-") as profile:
        b = Browser(Path(profile))
        try:
            yield b
        finally:
            b.quit()


class Rest:
    """The API over HTTP as one noauth identity, asserting success."""

    def __init__(self, endpoint: str, project: str = "admin-project", roles: str = "admin") -> None:
        self.endpoint = endpoint
        self.headers = {"X-Project-Id": project, "X-Roles": roles}

    def as_(self, project: str, roles: str = "member") -> Rest:
        return Rest(self.endpoint, project, roles)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.endpoint + path, json=body, headers=self.headers, timeout=30)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def create(self, collection: str, **attrs: Any) -> dict[str, Any]:
        member = {"security-groups": "security_group", "floatingips": "floatingip"}.get(collection, collection[:-1])
        return dict(self.call("POST", f"/v2.0/{collection}", {member: attrs})[member])

    def network_with_subnet(self, name: str, cidr: str, **attrs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        net = self.create("networks", name=name, **attrs)
        return net, self.create("subnets", network_id=net["id"], cidr=cidr, ip_version=4, name=f"{name}-v4")


def demo_topology(rest: Rest, project: str = "demo") -> dict[str, str]:
    """An external network, a router with its gateway and two networks, five ports, a floating IP and a
    network of nobody's router; returns their ids by name."""
    ids: dict[str, str] = {}
    public, _ = rest.network_with_subnet("public", "198.19.0.0/24", **{"router:external": True})
    ids["public"] = public["id"]
    demo = rest.as_(project)
    router = demo.create("routers", name="r1", external_gateway_info={"network_id": public["id"]})
    ids["r1"] = router["id"]
    for name, cidr, vms in (("web", "10.1.0.0/24", ["web1", "web2", "web3"]), ("db", "10.2.0.0/24", ["db1", "db2"])):
        net, subnet = demo.network_with_subnet(name, cidr)
        ids[name] = net["id"]
        demo.call("PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
        for vm in vms:
            ids[vm] = demo.create("ports", network_id=net["id"], name=vm, device_id=vm,
                                  device_owner="compute:nova")["id"]
    ids["fip"] = demo.create("floatingips", floating_network_id=public["id"], port_id=ids["web1"])["id"]
    ids["isolated"] = demo.network_with_subnet("isolated", "10.9.0.0/24")[0]["id"]
    return ids
