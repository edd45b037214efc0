#!/usr/bin/env python
"""How long the web console takes to draw its topology, in Debian's headless Chromium.

Not part of the test suite. Runs the real application (SQLite in a temporary directory) under uvicorn in a
thread of this process, fills it through the API with an external network, routers and networks holding
--sizes ports in total (spread over --networks networks, a floating IP on every tenth port), and for each size
measures, --runs times (the median is printed):

  * load -> drawn: from the page's navigation start to the topology drawn (the page's data-drawn-at: every
    collection fetched, laid out and rendered);
  * draw: the layout and SVG alone (data-draw-ms);
  * change -> redrawn: from a network created through the API to the page showing it (the live event stream,
    the reload and the redraw).

    .venv/bin/python bench/console.py                        # 200 and 1,000 ports
    .venv/bin/python bench/console.py --sizes 200,1000,3000
    .venv/bin/python bench/console.py --screenshot docs/images/console.png   # the README's picture

--screenshot draws a small demo cloud instead, with agents played through the in-process RPC transport (ports
ACTIVE, one host's agent dead, an HA router active on a host), runs a trace on it and saves the page as PNG.
Everything is bounded: requests time out, the run stops itself after --max-seconds. Nothing but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fermion.config import settings as cfg  # noqa: E402
from fermion.db import migrate  # noqa: E402
from fermion.db import models as m  # noqa: E402
from fermion.db.engine import Database  # noqa: E402
from fermion.rpc.contracts import HaStateReport, PortReport, StateReport, encode  # noqa: E402
from fermion.runtime.embedded import build_app  # noqa: E402
from fermion.services.common import now  # noqa: E402
from tests.support.browser import Browser  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402

ADMIN = {"X-Project-Id": "admin-project", "X-Roles": "admin"}
DEMO = {"X-Project-Id": "demo", "X-Roles": "member"}


@contextmanager
def server(tmp: Path) -> Iterator[tuple[Any, str]]:
    """The application on a fresh SQLite database (no quotas in the way), under uvicorn in a thread."""
    url = f"sqlite:///{tmp / 'console.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    app = build_app(cfg.Settings().replace("database", url=url).replace(
        "quotas", network=-1, subnet=-1, port=-1, floatingip=-1, router=-1))
    with serve_in_thread(app) as endpoint:
        try:
            yield app, endpoint
        finally:
            app.console.feed.close()  # open event streams end now: the server stops at once


class Rest:
    def __init__(self, endpoint: str) -> None:
        self.http = httpx.Client(base_url=endpoint, timeout=120)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] = ADMIN) -> Any:
        r = self.http.request(method, path, json=body, headers=headers)
        if r.status_code >= 300:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def create(self, collection: str, headers: dict[str, str] = ADMIN, **attrs: Any) -> dict[str, Any]:
        member = {"floatingips": "floatingip"}.get(collection, collection[:-1])
        return dict(self.call("POST", f"/v2.0/{collection}", {member: attrs}, headers)[member])

    def network(self, name: str, cidr: str, headers: dict[str, str] = ADMIN, **attrs: Any) -> tuple[str, str]:
        net = self.create("networks", headers, name=name, **attrs)
        sub = self.create("subnets", headers, network_id=net["id"], cidr=cidr, ip_version=4, name=f"{name}-v4")
        return net["id"], sub["id"]

    def ports(self, network_id: str, names: list[str], headers: dict[str, str] = ADMIN,
              **attrs: Any) -> list[dict[str, Any]]:
        out = []
        for i in range(0, len(names), 100):
            body = {"ports": [{"network_id": network_id, "name": n, "device_id": n, "device_owner": "compute:nova",
                               **attrs} for n in names[i:i + 100]]}
            out += self.call("POST", "/v2.0/ports", body, headers)["ports"]
        return out


def until(browser: Browser, script: str, timeout: float = 60) -> None:
    browser.wait(lambda: browser.js(script), timeout=timeout, what=script)


def load(browser: Browser, endpoint: str) -> tuple[float, float]:
    """The page as an admin: (load -> drawn, draw) in ms."""
    browser.open(endpoint, "admin-project", "admin")
    svg = "document.querySelector('#topology').dataset"
    until(browser, f"return {svg}.drawnAt")
    return float(browser.js(f"return {svg}.drawnAt")), float(browser.js(f"return {svg}.drawMs"))


def fill(rest: Rest, total: int, networks: int, made: dict[str, Any]) -> None:
    """Grow the cloud to `total` compute ports over `networks` networks (the first call makes the networks)."""
    if not made:
        public, _ = rest.network("public", "198.19.0.0/16", **{"router:external": True})
        made.update(public=public, nets=[], count=0)
        for i in range(networks):
            if i % 5 == 0:
                router = rest.create("routers", name=f"r{i // 5}", external_gateway_info={"network_id": public})
            net, sub = rest.network(f"net{i}", f"10.{i}.0.0/16")
            rest.call("PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": sub})
            made["nets"].append(net)
    while made["count"] < total:
        per = (total - made["count"]) // networks or 1
        for net in made["nets"]:
            start = made["count"]
            ports = rest.ports(net, [f"vm{start + k}" for k in range(per)])
            made["count"] += len(ports)
            for p in ports[::10]:
                rest.create("floatingips", floating_network_id=made["public"], port_id=p["id"])
            if made["count"] >= total:
                break


def measure(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fermion-bench-console-") as tmp, server(Path(tmp)) as (_, endpoint):
        rest = Rest(endpoint)
        browser = Browser(Path(tmp) / "profile")
        made: dict[str, Any] = {}
        try:
            for size in sizes:
                fill(rest, size, args.networks, made)
                load(browser, endpoint)  # warm: the browser's cache of the page's own files
                loads, draws, changes = [], [], []
                for run in range(args.runs):
                    loaded, drawn = load(browser, endpoint)
                    loads.append(loaded)
                    draws.append(drawn)
                    before = int(browser.js("return document.querySelector('#topology').dataset.rendered"))
                    until(browser, "return document.querySelector('#live').dataset.live === '1'")
                    name = f"probe-{size}-{run}"
                    rest.create("networks", name=name)
                    started = time.perf_counter()
                    until(browser, f"return !!document.querySelector('#topology [data-name=\"{name}\"]')")
                    changes.append((time.perf_counter() - started) * 1000)
                    assert int(browser.js("return document.querySelector('#topology').dataset.rendered")) > before
                ports = browser.js("return document.querySelectorAll('#topology [data-kind=port]').length")
                browser.driver.get("about:blank")  # no page reloading on every change while the cloud grows
                rows.append((size, ports, statistics.median(loads), statistics.median(draws),
                             statistics.median(changes)))
        finally:
            browser.quit()
    print(f"console topology in headless Chromium ({args.networks} networks, a floating IP on every tenth port, "
          f"median of {args.runs})")
    print(f"{'ports':>6} {'drawn':>6} {'load -> drawn':>14} {'draw':>8} {'change -> redrawn':>18}")
    for size, ports, loaded, draw, change in rows:
        print(f"{size:>6} {ports:>6} {loaded:>11.0f} ms {draw:>5.0f} ms {change:>15.0f} ms")


def agent(app: Any, host: str, kind: str = "lb", vtep: str = "") -> str:
    lb = {"devices": 0, "tunneling_ip": vtep, "tunnel_types": ["vxlan"]}
    fields = {"lb": ("Linux bridge agent", "neutron-linuxbridge-agent", "N/A", lb),
              "l3": ("L3 agent", "neutron-l3-agent", "l3_agent", {"agent_mode": "legacy"}),
              "dhcp": ("DHCP agent", "neutron-dhcp-agent", "dhcp_agent", {"dhcp_driver": "dnsmasq"})}[kind]
    report = StateReport(host=host, agent_type=fields[0], binary=fields[1], topic=fields[2],
                         configurations=fields[3], start_flag=True)
    return str(app.transport.call("report_state", encode(report))["agent_id"])


def screenshot(path: Path) -> None:
    """A small cloud with agents played, a trace run on it, the page saved."""
    with tempfile.TemporaryDirectory(prefix="fermion-bench-console-") as tmp, server(Path(tmp)) as (app, endpoint):
        rest = Rest(endpoint)
        hosts = ("compute-1", "compute-2", "compute-3", "net-1", "net-2")
        lbs = {h: agent(app, h, vtep=f"198.18.0.{i + 11}") for i, h in enumerate(hosts)}
        agent(app, "net-1", "l3")
        agent(app, "net-2", "l3")
        agent(app, "net-1", "dhcp")
        public, _ = rest.network("public", "198.19.0.0/24", **{"router:external": True})
        r1 = rest.create("routers", DEMO, name="r1", external_gateway_info={"network_id": public})
        r2 = rest.create("routers", name="r2", ha=True, project_id="demo", external_gateway_info={"network_id": public})
        ports: dict[str, dict[str, Any]] = {}
        layout = (("web", "10.1.0.0/24", r1, ["web1", "web2", "web3"], "compute-1"),
                  ("db", "10.2.0.0/24", r1, ["db1", "db2"], "compute-2"),
                  ("app", "10.3.0.0/24", r2, ["app1", "app2"], "compute-3"))
        for name, cidr, router, vms, host in layout:
            net, sub = rest.network(name, cidr, DEMO)
            rest.call("PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": sub}, DEMO)
            for p in rest.ports(net, vms, ADMIN, project_id="demo", **{"binding:host_id": host}):
                ports[p["name"]] = p
        lab, _ = rest.network("lab", "10.4.0.0/24", DEMO)
        rest.ports(lab, [f"lab{i:02d}" for i in range(40)], ADMIN, project_id="demo",
                   **{"binding:host_id": "compute-2"})
        for vm in ("web1", "app1"):
            rest.create("floatingips", DEMO, floating_network_id=public, port_id=ports[vm]["id"])
        rest.call("PUT", f"/v2.0/ports/{ports['web3']['id']}", {"port": {"admin_state_up": False}})
        by_host: dict[str, dict[str, int]] = {}
        for p in rest.call("GET", "/v2.0/ports")["ports"]:
            if p["binding:host_id"]:
                by_host.setdefault(p["binding:host_id"], {})[p["id"]] = p["revision_number"]
        for host, up in by_host.items():
            app.transport.call("report_ports", encode(PortReport(host=host, up=up)))
        app.transport.call("report_ha_states", encode(HaStateReport(host="net-2", states={r2["id"]: "active"})))
        old = now() - timedelta(hours=1)  # compute-3's agent fell silent
        app.services.db.write(lambda conn: conn.execute(
            update(m.agents).where(m.agents.c.id == lbs["compute-3"]).values(heartbeat_timestamp=old)))
        browser = Browser(Path(tmp) / "profile")
        try:
            load(browser, endpoint)
            browser.click("[data-action=trace]")
            browser.choose("#trace-form select[name=source]", ports["web2"]["id"])
            browser.choose("#trace-form select[name=destination]", ports["db1"]["id"])
            browser.click("#trace-form button[type=submit]")
            until(browser, "return !!document.querySelector('#trace-verdict')")
            verdict = browser.js("return document.querySelector('#trace-verdict').dataset.verdict")
            time.sleep(0.3)
            path.parent.mkdir(parents=True, exist_ok=True)
            browser.driver.save_screenshot(str(path))
            print(f"saved {path} (trace web2 -> db1 tcp 22: {verdict})")
        finally:
            browser.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="200,1000", help="total compute ports, comma separated (default 200,1000)")
    p.add_argument("--networks", type=int, default=10, help="networks the ports are spread over (default 10)")
    p.add_argument("--runs", type=int, default=3, help="page loads per size (default 3)")
    p.add_argument("--screenshot", type=Path, help="save a demo topology's picture here instead of measuring")
    p.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is not installed (scripts/bootstrap installs Debian's chromium and "
                             "chromium-driver)")
    timer = threading.Timer(args.max_seconds, lambda: (print("bench/console.py: --max-seconds reached",
                                                             file=sys.stderr), sys.exit(1)))
    timer.daemon = True
    timer.start()
    if args.screenshot:
        screenshot(args.screenshot)
    else:
        measure(args)


if __name__ == "__main__":
    main()
