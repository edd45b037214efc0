"""Assertions on what a Neutron API user sees: fault bodies and collection contents."""

from __future__ import annotations

from typing import Any

NEUTRON_ERROR_KEYS = {"type", "message", "detail"}


def assert_fault(r: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    """The response is an error with this status and a {"NeutronError": {type, message, detail}} body."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    err = body["NeutronError"]
    assert set(err) == NEUTRON_ERROR_KEYS, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if type_ is not None:
        assert err["type"] == type_, err
    assert r.headers["x-openstack-request-id"].startswith("req-")
    return err


def ids(r: Any, collection: str) -> list[str]:
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()[collection]]
