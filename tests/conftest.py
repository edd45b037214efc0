"""Shared fixtures: an in-process API over a fresh database, with Neutron noauth identities."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.config import settings as cfg
from fermion.db import migrate
from fermion.db.engine import Database
from fermion.runtime.embedded import build_app
from tests.support import servers
from tests.support.asgi import SyncClient as TestClient

# the longest single tests (minutes each): started first, so that the other workers share the rest meanwhile
# instead of one worker finishing them alone at the end
FIRST = ("tests/fullstack/test_readme.py", "tests/acceptance/test_tempest.py",
         "tests/fullstack/test_lab_distributed.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: next((i for i, f in enumerate(FIRST) if item.nodeid.startswith(f)), len(FIRST)))
    for item in items:
        if "postgres" in item.keywords and not servers.postgres_available():
            item.add_marker(pytest.mark.skip(reason="PostgreSQL is not reachable at 127.0.0.1:5432"))
        if "mysql" in item.keywords and not servers.mysql_available():
            item.add_marker(pytest.mark.skip(reason="MariaDB is not reachable at 127.0.0.1:3306"))


class Api:
    """A client acting as one identity (noauth headers), for readable tests."""

    def __init__(self, client: TestClient, project: str | None, roles: str | None) -> None:
        self.client = client
        self.headers: dict[str, str] = {}
        if project is not None:
            self.headers["X-Project-Id"] = project
        if roles is not None:
            self.headers["X-Roles"] = roles

    def as_(self, project: str | None, roles: str = "member") -> Api:
        return Api(self.client, project, roles)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    # shortcuts that assert success
    def create(self, collection: str, **attrs: Any) -> dict[str, Any]:
        member = collection[:-1]
        r = self.post(f"/v2.0/{collection}", json={member: attrs})
        assert r.status_code == 201, r.text
        return r.json()[member]

    def network(self, **attrs: Any) -> dict[str, Any]:
        return self.create("networks", **attrs)

    def subnet(self, network_id: str, cidr: str = "10.0.0.0/24", **attrs: Any) -> dict[str, Any]:
        version = 6 if ":" in cidr else 4
        return self.create("subnets", network_id=network_id, cidr=cidr, ip_version=version, **attrs)

    def port(self, network_id: str, **attrs: Any) -> dict[str, Any]:
        return self.create("ports", network_id=network_id, **attrs)


_SQLITE_TEMPLATE: list[Path] = []  # this worker's migrated empty SQLite database, made once


def migrated(url: str) -> None:
    """Bring the database at `url` to the latest schema. A new SQLite file is a copy of one migrated at the
    start (0.4 s saved per test); tests/contract/test_migrations.py tests the migrations themselves."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not Path(url[len(prefix):]).exists():
        if not _SQLITE_TEMPLATE:
            folder = tempfile.mkdtemp(prefix="fermion-template-")
            atexit.register(shutil.rmtree, folder, True)
            template = Path(folder) / "migrated.sqlite"
            db = Database(prefix + str(template))
            migrate.upgrade(db.engine)
            db.dispose()
            _SQLITE_TEMPLATE.append(template)
        shutil.copyfile(_SQLITE_TEMPLATE[0], url[len(prefix):])
        return
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()


def make_client(url: str, tmp_path: Path, sections: dict[str, dict[str, Any]] | None = None,
                **auth: Any) -> TestClient:
    """An in-process API on a migrated database; `sections` replace settings, e.g. {"agents": {...}}."""
    migrated(url)
    settings = cfg.Settings().replace("database", url=url)
    if auth:
        settings = settings.replace("auth", **auth)
    for section, values in (sections or {}).items():
        settings = settings.replace(section, **values)
    return TestClient(build_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(url, tmp_path) as c:
        yield c


@pytest.fixture
def api(client: TestClient) -> Api:
    """Admin of project 'admin-project'."""
    return Api(client, "admin-project", "admin")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with servers.temporary_database(request.param, tmp_path) as url:
        yield url
