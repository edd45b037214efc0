"""Member identities of three projects, for the tests of sharing between projects."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.fixture
def alice(api: Api) -> Api:
    return api.as_("alice", "member")


@pytest.fixture
def bob(api: Api) -> Api:
    return api.as_("bob", "member")


@pytest.fixture
def carol(api: Api) -> Api:
    return api.as_("carol", "member")
