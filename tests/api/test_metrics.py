"""GET /metrics: Prometheus text that follows what users and agents do. Series are process-wide, so each
test compares a scrape before and after its own actions."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.rpc.contracts import PortReport, StateReport, encode
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient
from tests.support.prom import Scrape

LINUXBRIDGE = "Linux bridge agent"


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[SyncClient]:
    agents = {"agent_down_time": 1.0, "report_interval": 0.5}
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"agents": agents}) as client:
        yield client


@pytest.fixture
def lapi(app_client: SyncClient) -> Api:
    return Api(app_client, "admin-project", "admin")


def scrape(api: Api, **headers: str) -> Scrape:
    r = api.client.request("GET", "/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(r.text)


def rpc(api: Api, method: str, message: Any) -> Any:
    """What an agent sends, through the server's own transport."""
    return api.client.app.transport.call(method, encode(message))


def report_state(api: Api, host: str, agent_type: str = LINUXBRIDGE) -> None:
    rpc(api, "report_state", StateReport(host=host, agent_type=agent_type, binary="fermion-linuxbridge-agent",
                                         topic="N/A", start_flag=True,
                                         configurations={"tunneling_ip": "198.18.0.50", "tunnel_types": ["vxlan"],
                                                         "interface_mappings": {}}))


def test_metrics_answer_a_scraper_without_credentials_in_prometheus_text(lapi: Api) -> None:
    r = lapi.client.request("GET", "/metrics")  # no identity headers at all
    assert r.status_code == 200
    families = Scrape(r.text).families
    for name in ("fermion_api_requests", "fermion_api_request_duration_seconds", "fermion_rpc_messages",
                 "fermion_port_active_latency_seconds", "fermion_agent_sync_duration_seconds",
                 "fermion_agent_firewall_apply_seconds", "fermion_agent_nat_apply_seconds",
                 "fermion_agent_router_failures", "fermion_db_pool_size", "fermion_db_pool_checked_out",
                 "fermion_agent_alive"):
        assert name in families, name
    assert Scrape(r.text).value("fermion_db_pool_size") == 16


ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")  # a uuid, dashed or not


def test_requests_count_by_route_method_and_status_with_latency(lapi: Api) -> None:
    before = scrape(lapi)
    lapi.network(name="counted")
    for _ in range(3):  # three different ids: one series, not three
        assert lapi.get(f"/v2.0/networks/{uuid.uuid4()}").status_code == 404
    assert lapi.get(f"/v2.0/no-such-thing/{uuid.uuid4()}").status_code == 404
    after = scrape(lapi)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("fermion_api_requests_total", resource="networks", method="POST", status="201") == 1
    assert delta("fermion_api_requests_total", resource="networks/{id}", method="GET", status="404") == 3
    assert delta("fermion_api_requests_total", resource="unknown", method="GET", status="404") == 1
    assert delta("fermion_api_request_duration_seconds_count", resource="networks", method="POST") == 1
    assert delta("fermion_api_request_duration_seconds_sum", resource="networks", method="POST") > 0
    # the bounded label set: no raw path (and no id) is ever a label value
    for labels in after.series("fermion_api_requests_total"):
        assert not any(ID.search(v) for v in labels.values()), labels


def test_agents_appear_alive_then_dead_by_type_and_host(lapi: Api) -> None:
    host = f"metrics-{uuid.uuid4().hex[:8]}"
    before = scrape(lapi)
    report_state(lapi, host)
    now = scrape(lapi)
    assert now.value("fermion_agent_alive", agent_type=LINUXBRIDGE, host=host) == 1
    assert now.series("fermion_agent_heartbeat_age_seconds")
    assert (now.value("fermion_rpc_messages_total", direction="received", method="report_state")
            - before.value("fermion_rpc_messages_total", direction="received", method="report_state")) == 1
    assert (now.value("fermion_rpc_messages_total", direction="sent", method="report_state")
            - before.value("fermion_rpc_messages_total", direction="sent", method="report_state")) == 1
    # no heartbeat for longer than agent_down_time (1 s; heartbeats are kept to the second)
    deadline = time.monotonic() + 10
    while scrape(lapi).value("fermion_agent_alive", agent_type=LINUXBRIDGE, host=host) != 0:
        assert time.monotonic() < deadline, "the agent never counted as dead"
        time.sleep(0.2)
    dead = [s for s in scrape(lapi).series("fermion_agent_alive") if s["host"] == host]
    assert dead == [{"agent_type": LINUXBRIDGE, "host": host}]


def test_port_create_to_active_latency_is_observed_once_per_port(lapi: Api) -> None:
    host = f"metrics-{uuid.uuid4().hex[:8]}"
    report_state(lapi, host)  # an L2 agent on the host, so ports bind there
    net = lapi.network()
    lapi.subnet(net["id"])
    before = scrape(lapi)
    hints = before.value("fermion_rpc_messages_total", direction="sent", method="hint")
    port = lapi.port(net["id"], **{"binding:host_id": host})
    assert port["binding:vif_type"] == "bridge"
    time.sleep(0.05)
    rpc(lapi, "report_ports", PortReport(host=host, up={port["id"]: port["revision_number"]}, down=[]))
    assert lapi.get(f"/v2.0/ports/{port['id']}").json()["port"]["status"] == "ACTIVE"
    after = scrape(lapi)
    assert after.value("fermion_port_active_latency_seconds_count") - before.value(
        "fermion_port_active_latency_seconds_count") == 1
    observed = after.value("fermion_port_active_latency_seconds_sum") - before.value(
        "fermion_port_active_latency_seconds_sum")
    assert 0.05 <= observed < 10
    assert after.value("fermion_rpc_messages_total", direction="sent", method="hint") > hints

    # reported again (every full sync does), down and up again: still one creation, one observation
    rpc(lapi, "report_ports", PortReport(host=host, up={}, down=[port["id"]]))
    rpc(lapi, "report_ports", PortReport(host=host, up={port["id"]: port["revision_number"]}, down=[]))
    assert scrape(lapi).value("fermion_port_active_latency_seconds_count") == after.value(
        "fermion_port_active_latency_seconds_count")


def test_a_port_reported_at_an_older_revision_is_not_active_yet(lapi: Api) -> None:
    host = f"metrics-{uuid.uuid4().hex[:8]}"
    report_state(lapi, host)
    net = lapi.network()
    lapi.subnet(net["id"])
    port = lapi.port(net["id"], **{"binding:host_id": host})
    lapi.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "renamed"}})  # revision 2
    before = scrape(lapi).value("fermion_port_active_latency_seconds_count")
    rpc(lapi, "report_ports", PortReport(host=host, up={port["id"]: 1}, down=[]))
    assert scrape(lapi).value("fermion_port_active_latency_seconds_count") == before
    rpc(lapi, "report_ports", PortReport(host=host, up={port["id"]: 2}, down=[]))
    assert scrape(lapi).value("fermion_port_active_latency_seconds_count") == before + 1


def test_metrics_for_admins_only_when_not_public(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"server": {"metrics_public": False}}) as client:
        member = client.request("GET", "/metrics", headers={"X-Project-Id": "p", "X-Roles": "member"})
        assert member.status_code == 403
        assert member.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
        admin = client.request("GET", "/metrics", headers={"X-Project-Id": "p", "X-Roles": "admin"})
        assert admin.status_code == 200
        assert "fermion_api_requests_total" in admin.text
