"""The console's live feed (GET /ui/events) fed by what agents report, on the real app in a thread of the test
process whose in-process RPC transport lets the test play the agents: each project hears of its own resources
only, and the page's status colours follow port, agent and HA reports within 2 s, without a reload."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from fermion.config import settings as cfg
from fermion.db import models as m
from fermion.rpc.contracts import HaStateReport, PortReport, StateReport, encode
from fermion.runtime.embedded import build_app
from fermion.services.common import now
from tests.conftest import migrated
from tests.console.conftest import Rest
from tests.support.browser import Browser
from tests.support.inproc_server import serve_in_thread

LB = ("Linux bridge agent", "neutron-linuxbridge-agent", "N/A",
      {"tunnel_types": ["vxlan"], "tunneling_ip": "198.18.0.11"})
L3 = ("L3 agent", "neutron-l3-agent", "l3_agent", {"agent_mode": "legacy"})


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('console-live') / 'live.sqlite'}"
    migrated(url)
    app = build_app(cfg.Settings().replace("database", url=url))
    with serve_in_thread(app) as endpoint:
        yield app, endpoint
        app.console.feed.close()  # as `fermion serve` does when it stops: open event streams end at once


def agent(app: Any, host: str, kind: tuple[str, str, str, dict[str, Any]] = LB) -> str:
    """A state report as the agent sends it; the agent's id."""
    report = StateReport(host=host, agent_type=kind[0], binary=kind[1], topic=kind[2], configurations=kind[3])
    return str(app.transport.call("report_state", encode(report))["agent_id"])


def ports_up(app: Any, host: str, ports: dict[str, int]) -> None:
    app.transport.call("report_ports", encode(PortReport(host=host, up=ports)))


def silence(app: Any, agent_id: str) -> None:
    """The agent stopped reporting long ago (its last heartbeat moved into the past, no waiting)."""
    old = now() - timedelta(hours=1)
    app.services.db.write(lambda conn: conn.execute(
        update(m.agents).where(m.agents.c.id == agent_id).values(heartbeat_timestamp=old)))


class Stream:
    """GET /ui/events read in a thread: the (kind, id) pairs of its `change` events, in order."""

    def __init__(self, endpoint: str, project: str, roles: str = "member") -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.hello: threading.Event = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self.thread = threading.Thread(target=self._read, args=(endpoint, project, roles), daemon=True)
        self.thread.start()
        assert self.hello.wait(5), "no hello on the event stream"

    def _read(self, endpoint: str, project: str, roles: str) -> None:
        headers = {"X-Project-Id": project, "X-Roles": roles}
        try:
            with self.client.stream("GET", endpoint + "/ui/events", headers=headers) as r:
                event = ""
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        if event == "hello":
                            self.hello.set()
                    elif line.startswith("data:") and event == "change":
                        for change in json.loads(line[5:]):
                            self.events.put((change["kind"], change["id"]))
        except httpx.HTTPError:
            pass  # closed by the test

    def next(self, timeout: float = 2.0) -> tuple[str, str] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def until(self, wanted: tuple[str, str], timeout: float = 2.0) -> list[tuple[str, str]]:
        """What arrived up to and including `wanted`; fails if it does not arrive in time."""
        seen = []
        deadline = time.monotonic() + timeout
        while wanted not in seen:
            got = self.next(max(0.0, deadline - time.monotonic()))
            assert got is not None, f"{wanted} did not arrive; got {seen}"
            seen.append(got)
        return seen

    def close(self) -> None:
        self.client.close()


def test_each_project_hears_only_of_its_own_resources(cloud: tuple[Any, str]) -> None:
    app, endpoint = cloud
    rest = Rest(endpoint)
    streams = {p: Stream(endpoint, p) for p in ("proj-a", "proj-b")}
    streams["admin"] = Stream(endpoint, "admin-project", "admin")
    try:
        net = rest.as_("proj-a").create("networks", name="a-net")
        streams["proj-a"].until(("network", net["id"]))
        streams["admin"].until(("network", net["id"]))
        theirs = rest.as_("proj-b").create("networks", name="b-net")
        assert streams["proj-b"].until(("network", theirs["id"])) == [("network", theirs["id"])]
        # an agent's report: the port's project hears that it became ACTIVE, the other does not
        agent(app, "host-a")
        port = rest.create("ports", network_id=net["id"], project_id="proj-a", **{"binding:host_id": "host-a"})
        streams["proj-a"].until(("port", port["id"]))
        ports_up(app, "host-a", {port["id"]: port["revision_number"]})
        streams["proj-a"].until(("port", port["id"]))
        assert rest.call("GET", f"/v2.0/ports/{port['id']}")["port"]["status"] == "ACTIVE"
        assert streams["proj-b"].next(0.3) is None
    finally:
        for s in streams.values():
            s.close()


def test_status_colours_follow_the_agents_live(browser: Browser, cloud: tuple[Any, str], tmp_path: Path) -> None:
    app, endpoint = cloud
    rest = Rest(endpoint)
    lb = agent(app, "compute-1")
    for host in ("net-1", "net-2"):
        agent(app, host)
        agent(app, host, L3)
    net, _ = rest.as_("live").network_with_subnet("live-net", "10.50.0.0/24")
    port = rest.create("ports", network_id=net["id"], project_id="live", name="vm-live",
                       device_owner="compute:nova", **{"binding:host_id": "compute-1"})
    router = rest.create("routers", name="ha-router", ha=True, project_id="live")
    browser.open(endpoint, "admin-project", "admin")
    browser.wait(lambda: browser.js("return document.querySelector('#live').dataset.live === '1'"),
                 what="the event stream")
    assert browser.node(port["id"])["state"] == "down"

    def takes(state: str) -> float:
        return browser.wait(lambda: (browser.node(port["id"]) or {}).get("state") == state, timeout=5,
                            what=f"the port {state}")

    ports_up(app, "compute-1", {port["id"]: port["revision_number"]})
    assert takes("active") < 2.0
    silence(app, lb)  # its host's agent died: the port shows it
    assert takes("agent-dead") < 2.0
    agent(app, "compute-1")
    assert takes("active") < 2.0
    app.transport.call("report_ha_states", encode(HaStateReport(host="net-2", states={router["id"]: "active"})))
    took = browser.wait(lambda: "HA active on net-2" in (browser.node(router["id"]) or {}).get("text", ""),
                        timeout=5, what="the router's active host")
    assert took < 2.0
    browser.screenshot(tmp_path, "console-live-status")


def test_the_agents_and_quotas_pages(browser: Browser, cloud: tuple[Any, str], tmp_path: Path) -> None:
    app, endpoint = cloud
    rest = Rest(endpoint)
    for host in ("net-3", "net-4"):
        agent(app, host)
        agent(app, host, L3)
    dead = agent(app, "compute-9", (*LB[:3], {**LB[3], "last_full_sync_seconds": 0.42}))
    silence(app, dead)
    router = rest.create("routers", name="served-router", ha=True, project_id="quota-proj")
    rest.as_("quota-proj").create("networks", name="counted")
    browser.open(endpoint, "admin-project", "admin")
    browser.click("nav a[data-view=agents]")
    browser.wait(lambda: browser.js("return !!document.querySelector('#agents-table')"), what="the agents")
    rows = browser.js("""return Object.fromEntries([...document.querySelectorAll('#agents-table tr[data-id]')]
        .map(tr => [tr.dataset.id, [tr.dataset.alive, tr.textContent]]))""")
    agents = rest.call("GET", "/v2.0/agents")["agents"]
    assert set(rows) == {a["id"] for a in agents}
    assert rows[dead][0] == "false" and "full sync 0.42 s" in rows[dead][1]
    hosting = rest.call("GET", f"/v2.0/routers/{router['id']}/l3-agents")["agents"]
    assert hosting and all("served-router" in rows[a["id"]][1] for a in hosting)  # what each serves
    hosts = browser.js("return [...document.querySelectorAll('#agents-table tr.host')].map(tr => tr.dataset.host)")
    assert sorted(hosts) == sorted({a["host"] for a in agents})
    browser.screenshot(tmp_path, "console-agents")
    browser.click("nav a[data-view=quotas]")
    browser.wait(lambda: browser.js("return !!document.querySelector('#quota-table')"), what="the quotas")
    browser.choose("#quota-project", "quota-proj")
    used = ("return document.querySelector('#quota-table tr[data-resource=network] td:nth-child(2)')"
            "?.textContent")
    browser.wait(lambda: browser.js(used) == "1", what="the project's quota usage")
    browser.screenshot(tmp_path, "console-quotas")
