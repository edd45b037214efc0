"""Migrations produce exactly the schema the models describe, on every supported database."""

from __future__ import annotations

import subprocess
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fermion.db import migrate
from fermion.db.engine import Database
from fermion.db.models import metadata
from tests.support import servers


def test_upgrade_matches_models(any_db_url: str) -> None:
    db = Database(any_db_url)
    try:
        assert migrate.current(db.engine) is None
        migrate.upgrade(db.engine)
        assert migrate.current(db.engine) == migrate.head()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        migrate.upgrade(db.engine)  # idempotent
    finally:
        db.dispose()


def test_server_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    proc = subprocess.run(servers.fermion_cmd("serve", "--port", str(servers.free_port()), "--database", url),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "fermion db upgrade" in proc.stderr
    assert "no schema" in proc.stderr


def test_data_survives_a_restart(tmp_path: Path) -> None:
    import httpx

    url = f"sqlite:///{tmp_path / 'keep.sqlite'}"
    with servers.live_server(url) as ep:
        net = httpx.post(f"{ep}/v2.0/networks", json={"network": {"name": "kept"}}).json()["network"]
    with servers.live_server(url) as ep:
        assert httpx.get(f"{ep}/v2.0/networks/{net['id']}").json()["network"]["name"] == "kept"


def test_head_constant_matches_alembic() -> None:
    assert migrate.HEAD == migrate.head()


def test_rules_made_before_address_groups_get_their_normalized_cidr(tmp_path: Path) -> None:
    """0008 adds the rules' normalized_cidr column (filters) and fills it for the rules already there; it
    also seeds Neutron's default security-group rule templates."""
    from datetime import datetime

    from sqlalchemy import insert, select

    from fermion.db import models as m

    db = Database(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        migrate.upgrade(db.engine, "0004")
        ts = datetime(2026, 1, 1)
        with db.engine.begin() as conn:
            conn.execute(insert(m.securitygroups).values(
                id="g1", project_id="p", name="g", description="", created_at=ts, updated_at=ts, revision_number=0,
                stateful=True))
            for rid, prefix in (("r1", "10.0.0.7/24"), ("r2", None)):
                conn.exec_driver_sql(
                    "INSERT INTO securitygrouprules (id, project_id, security_group_id, direction, ethertype, "
                    "remote_ip_prefix, description, fingerprint, created_at, updated_at, revision_number) "
                    "VALUES (?, 'p', 'g1', 'ingress', 'IPv4', ?, '', ?, ?, ?, 0)", (rid, prefix, rid, ts, ts))
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            r = m.securitygrouprules.c
            assert dict(conn.execute(select(r.id, r.normalized_cidr)).all()) == {"r1": "10.0.0.0/24", "r2": None}
            t = m.default_security_group_rules.c
            assert len(conn.execute(select(t.id)).all()) == 4
    finally:
        db.dispose()


def test_shared_and_external_networks_get_their_wildcard_policies(any_db_url: str) -> None:
    """0005: a network's shared/router:external flags become wildcard RBAC policies, as the API now reads them."""
    from datetime import datetime

    from sqlalchemy import insert, select

    from fermion.db import models as m

    db = Database(any_db_url)
    try:
        migrate.upgrade(db.engine, "0010")  # the revision before 0005
        now = datetime(2026, 1, 1)
        with db.engine.begin() as conn:
            for ident, shared, external in (("n-shared", True, False), ("n-ext", False, True),
                                            ("n-both", True, True), ("n-none", False, False)):
                conn.execute(insert(m.networks).values(
                    id=ident, project_id="p1", name="", description="", created_at=now, updated_at=now,
                    revision_number=1, admin_state_up=True, status="ACTIVE", shared=shared, mtu=1500,
                    router_external=external, port_security_enabled=True))
        migrate.upgrade(db.engine)
        r = m.rbac_policies.c
        with db.engine.connect() as conn:
            got = sorted(conn.execute(select(r.object_id, r.action, r.target_project, r.project_id,
                                             r.object_type)).all())
        assert got == [("n-both", "access_as_external", "*", "p1", "network"),
                       ("n-both", "access_as_shared", "*", "p1", "network"),
                       ("n-ext", "access_as_external", "*", "p1", "network"),
                       ("n-shared", "access_as_shared", "*", "p1", "network")]
    finally:
        db.dispose()
