"""What an operator sees of a running `fermion serve`, over real HTTP: /healthz and /openapi.json."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import servers

PROJECT = {"X-Project-Id": "tenant-a", "X-Roles": "member"}


def test_healthz_and_openapi_json_are_served_over_http(tmp_path: Path) -> None:
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}") as endpoint:
        health = httpx.get(f"{endpoint}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        doc = httpx.get(f"{endpoint}/openapi.json")  # no credentials needed, like the version document
        assert doc.status_code == 200, doc.text
        assert doc.headers["content-type"] == "application/json"
        spec = doc.json()
        assert spec["openapi"].startswith("3.")
        assert "/v2.0/networks" in spec["paths"] and "/v2.0/ports/{id}" in spec["paths"]
        # the Neutron `.json` suffix still works on API paths
        assert httpx.get(f"{endpoint}/v2.0/networks.json", headers=PROJECT).json() == {"networks": []}
