"""The web console in a real browser against a live `fermion serve` (SQLite): it draws what the API holds,
follows changes made elsewhere without a reload, creates what `openstack` then lists, shows a project only its
own resources and runs a trace. Screenshots go to each test's tmp_path (and $FERMION_TEST_ARTIFACTS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import WORKERS, Cli, client_env
from tests.console.conftest import Rest, demo_topology
from tests.support import servers
from tests.support.browser import Browser


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console-db")
    with servers.temporary_database("sqlite", tmp) as url, servers.live_server(url) as ep:
        yield ep


@pytest.fixture(scope="module")
def demo(endpoint: str) -> dict[str, str]:
    return demo_topology(Rest(endpoint))


@pytest.fixture(scope="module")
def cli(endpoint: str) -> Iterator[Cli]:
    env = client_env(OS_AUTH_TYPE="none", OS_NETWORK_ENDPOINT_OVERRIDE=endpoint)
    yield Cli(env)
    worker = WORKERS.pop(frozenset(env.items()), None)
    if worker is not None:
        worker.close()


def test_topology_shows_what_the_api_holds(browser: Browser, endpoint: str, demo: dict[str, str],
                                           tmp_path: Path) -> None:
    browser.open(endpoint, "admin-project", "admin")
    for name, ident in demo.items():
        node = browser.node(ident)
        assert node is not None, f"{name} is not drawn"
    assert browser.node(demo["public"])["external"] == "true"
    assert browser.node(demo["r1"])["kind"] == "router"
    # the router's gateway and its interfaces are drawn as links
    for other in ("public", "web", "db"):
        assert browser.js(f"return !!document.querySelector('path.link[data-a=\"{demo['r1']}\"]"
                          f"[data-b=\"{demo[other]}\"]')"), f"no link r1 - {other}"
    assert not browser.js(f"return !!document.querySelector('path.link[data-b=\"{demo['isolated']}\"]')")
    # ports with their status (no agent runs here: DOWN) and the floating IP on its port
    fip = Rest(endpoint).call("GET", f"/v2.0/floatingips/{demo['fip']}")["floatingip"]
    assert fip["floating_ip_address"] in browser.node(demo["fip"])["text"]
    web1 = browser.node(demo["web1"])
    assert (web1["kind"], web1["status"], web1["state"]) == ("port", "DOWN", "down")
    drawn = browser.js("return [...document.querySelectorAll('#topology [data-kind=port]')].map(e => e.dataset.id)")
    ports = Rest(endpoint).call("GET", "/v2.0/ports?device_owner=compute:nova")["ports"]
    assert sorted(drawn) == sorted(p["id"] for p in ports)
    # nothing failed to load, nothing was refused by the page's content security policy
    assert [e["message"] for e in browser.driver.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.screenshot(tmp_path, "console-topology")


def test_changes_made_with_the_cli_appear_without_reload(browser: Browser, endpoint: str, demo: dict[str, str],
                                                         cli: Cli, tmp_path: Path) -> None:
    browser.open(endpoint, "admin-project", "admin")
    browser.wait(lambda: browser.js("return document.querySelector('#live').dataset.live === '1'"),
                 what="the event stream")
    browser.js("window.notReloaded = true")
    cli.run("network", "create", "made-by-cli")
    took = browser.wait(lambda: browser.named("made-by-cli") is not None, what="the CLI's network")
    assert took < 2.0, f"the new network took {took:.2f} s to appear"
    cli.run("port", "set", "--disable", demo["web2"])
    took = browser.wait(lambda: browser.node(demo["web2"])["state"] == "admin-down", what="web2 admin down")
    assert took < 2.0, f"the port's new state took {took:.2f} s to show"
    assert browser.js("return window.notReloaded === true")
    browser.screenshot(tmp_path, "console-live")


def test_a_network_created_in_the_console_is_listed_by_openstack(browser: Browser, endpoint: str,
                                                                  demo: dict[str, str], cli: Cli,
                                                                  tmp_path: Path) -> None:
    browser.open(endpoint, "admin-project", "admin")
    browser.click("[data-action=new-network]")
    browser.fill("#dialog-fields input[name=name]", "from-console")
    browser.fill("#dialog-fields input[name=cidr]", "10.77.0.0/24")
    browser.click("#dialog-ok")
    browser.wait(lambda: browser.named("from-console") is not None, what="the console's network drawn")
    networks = cli.json("network", "list")
    assert "from-console" in [n["Name"] for n in networks]
    subnets = cli.json("subnet", "list")
    assert "10.77.0.0/24" in [s["Subnet"] for s in subnets]
    # and a router interface to it, from the router's panel
    net_id = browser.named("from-console")["id"]
    browser.click(f"#topology g[data-id='{demo['r1']}']")
    browser.click("#details [data-action=add-if]")
    subnet_id = next(s["ID"] for s in subnets if s["Subnet"] == "10.77.0.0/24")
    browser.choose("#dialog-fields select[name=subnet]", subnet_id)
    browser.click("#dialog-ok")
    browser.wait(lambda: browser.js(f"return !!document.querySelector('path.link[data-a=\"{demo['r1']}\"]"
                                    f"[data-b=\"{net_id}\"]')"), what="the new interface's link")
    browser.screenshot(tmp_path, "console-created")


def test_a_project_sees_only_its_own_resources(browser: Browser, endpoint: str, demo: dict[str, str],
                                               tmp_path: Path) -> None:
    rest = Rest(endpoint)
    mine = rest.as_("tenant-b").create("networks", name="b-net")
    browser.open(endpoint)  # the log-in page: choose the project and role
    browser.fill("#noauth-form input[name=project]", "tenant-b")
    browser.choose("#noauth-form select[name=roles]", "member")
    browser.click("#noauth-form button[type=submit]")
    browser.wait(lambda: browser.rendered() > 0, what="the topology drawn")
    assert browser.js("return document.querySelector('#who').dataset.project") == "tenant-b"
    assert browser.node(mine["id"]) is not None
    assert browser.node(demo["public"]) is not None  # external networks are everyone's
    for other in ("web", "db", "r1", "web1", "fip"):
        assert browser.node(demo[other]) is None, f"tenant-b sees demo's {other}"
    # live too: another project's new network never shows, the project's own does
    browser.wait(lambda: browser.js("return document.querySelector('#live').dataset.live === '1'"),
                 what="the event stream")
    rest.as_("demo").create("networks", name="not-for-b")
    second = rest.as_("tenant-b").create("networks", name="b-net-2")
    browser.wait(lambda: browser.node(second["id"]) is not None, what="tenant-b's second network")
    time.sleep(0.3)
    assert browser.named("not-for-b") is None
    browser.screenshot(tmp_path, "console-tenant")


def test_the_last_identitys_slow_answers_are_never_drawn_after_its_log_out(browser: Browser, endpoint: str,
                                                                          demo: dict[str, str]) -> None:
    """A reload still waiting on the API when its user logs out: its answers come after the next project has
    logged in, and are dropped (they were drawn for a moment: a clean run caught tenant-b seeing demo's web)."""
    browser.open(endpoint, "demo", "admin")
    browser.wait(lambda: browser.js("return document.querySelector('#live').dataset.live === '1'"),
                 what="the event stream")
    browser.js("""const real = window.fetch;  // demo's API answers now take 1.5 s
        window.fetch = async (path, init) => {
          const r = await real(path, init);
          if (init && init.headers && init.headers['X-Project-Id'] === 'demo' && String(path).startsWith('/v2.0/'))
            await new Promise((ok) => setTimeout(ok, 1500));
          return r;
        };""")
    Rest(endpoint).as_("demo").create("networks", name="slow-for-demo")  # the page reloads, slowly
    time.sleep(0.4)
    browser.js("""window.drawn = new Set();
        new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach((n) => {
          if (n.dataset && n.dataset.id) window.drawn.add(n.dataset.id);
          if (n.querySelectorAll) n.querySelectorAll('[data-id]').forEach((e) => window.drawn.add(e.dataset.id));
        }))).observe(document.querySelector('#topology'), {childList: true, subtree: true});""")
    browser.click("#logout")
    browser.fill("#noauth-form input[name=project]", "tenant-b")
    browser.choose("#noauth-form select[name=roles]", "member")
    browser.click("#noauth-form button[type=submit]")
    browser.wait(lambda: browser.rendered() > 0, what="tenant-b's topology")
    time.sleep(2)  # demo's last answers have come by now
    drawn = set(browser.js("return [...window.drawn]"))
    assert demo["public"] in drawn  # tenant-b's own drawing was watched
    assert not drawn & {demo[k] for k in ("web", "db", "r1")}, "demo's resources drawn after its log-out"


def test_a_trace_shows_its_verdict_on_the_topology(browser: Browser, endpoint: str, demo: dict[str, str],
                                                   tmp_path: Path) -> None:
    browser.open(endpoint, "demo", "member")
    browser.click("[data-action=trace]")
    browser.choose("#trace-form select[name=source]", demo["web3"])
    browser.choose("#trace-form select[name=destination]", demo["db1"])
    browser.fill("#trace-form input[name=port]", "22")
    browser.click("#trace-form button[type=submit]")
    browser.wait(lambda: browser.js("return !!document.querySelector('#trace-verdict')"), what="the verdict")
    verdict = browser.js("return document.querySelector('#trace-verdict').dataset.verdict")
    assert verdict == "not_routable"  # no agent runs here: the ports are DOWN
    hops = browser.js("return [...document.querySelectorAll('#trace-result ol.hops li')].map(li => li.className)")
    assert hops[0] == "not_routable" and "pass" in hops
    # the path on the map: the ports where it fails, the networks it crosses, the link between them
    assert "path-fail" in browser.node(demo["web3"])["cls"]
    assert "on-path" in browser.js(f"return document.querySelector('#topology [data-id=\"{demo['web']}\"]')"
                                   ".getAttribute('class')")
    assert browser.js("return document.querySelectorAll('path.link.on-path').length") >= 1
    browser.screenshot(tmp_path, "console-trace")


def test_security_group_rules_are_edited_in_the_console(browser: Browser, endpoint: str, demo: dict[str, str],
                                                        cli: Cli, tmp_path: Path) -> None:
    browser.open(endpoint, "demo", "member")
    browser.click("nav a[data-view=security-groups]")
    browser.wait(lambda: browser.js("return !!document.querySelector('#sg-rules')"), what="the default group")
    rows = "return document.querySelectorAll('#sg-rules tr[data-id]').length"
    before = browser.js(rows)
    browser.click("#sg-detail [data-action=add-rule]")
    browser.choose("#dialog-fields select[name=protocol]", "tcp")
    browser.fill("#dialog-fields input[name=min]", "22")
    browser.fill("#dialog-fields input[name=prefix]", "198.19.0.0/24")
    browser.click("#dialog-ok")
    browser.wait(lambda: browser.js(rows) == before + 1, what="the new rule")
    group = Rest(endpoint).as_("demo").call("GET", "/v2.0/security-groups?name=default")["security_groups"][0]
    rules = cli.json("security", "group", "rule", "list", group["id"])
    added = [r for r in rules if r["IP Range"] == "198.19.0.0/24"]
    assert len(added) == 1 and added[0]["IP Protocol"] == "tcp" and added[0]["Port Range"] == "22:22"
    browser.screenshot(tmp_path, "console-security-group")
    browser.click(f"#sg-rules tr[data-id='{added[0]['ID']}'] [data-action=delete-rule]")
    browser.wait(lambda: browser.js(rows) == before, what="the rule deleted")
