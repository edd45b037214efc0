"""Identities the API tests share: an admin and a project member (the router and floating IP tests), and
members of three projects (the tests of sharing between projects)."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.fixture
def admin(api: Api) -> Api:
    return api.as_("admin-project", "admin")


@pytest.fixture
def tenant(api: Api) -> Api:
    return api.as_("tenant-a", "member")


@pytest.fixture
def alice(api: Api) -> Api:
    return api.as_("alice", "member")


@pytest.fixture
def bob(api: Api) -> Api:
    return api.as_("bob", "member")


@pytest.fixture
def carol(api: Api) -> Api:
    return api.as_("carol", "member")
