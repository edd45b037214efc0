"""Browser tests of the web console: Debian's headless Chromium driven by Selenium (nothing downloaded at run
time). Tests that need the browser skip, saying why, when chromium, chromedriver or selenium is missing."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,900")
ADMIN = {"X-Project-Id": "admin-project", "X-Roles": "admin"}


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed (scripts/bootstrap installs it)"
    for binary, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (Debian package {package}; scripts/bootstrap installs it)"
    return None


class Browser:
    """One headless Chromium for a test module, with the waits and look-ups the console tests share."""

    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(shutil.which("chromium"))
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        self.driver = webdriver.Chrome(options=options, service=Service(str(shutil.which("chromedriver"))))

    def open(self, endpoint: str, project: str | None = None, roles: str = "member") -> None:
        """The console entered directly as a project (noauth), or without one: its log-in page."""
        if project is None:  # signed out with the page's own button, when a session is still open
            self.driver.get(f"{endpoint}/ui/")
            shown = "return ['#login', '#logout'].filter(s => !document.querySelector(s).hidden)"
            self.wait(lambda: self.js(shown), what="the log-in page or a session")
            if self.js(shown) == ["#logout"]:
                self.click("#logout")
            self.wait(lambda: self.js(shown) == ["#login"], what="the log-in page")
            return
        self.driver.get(f"{endpoint}/ui/?project={project}&roles={roles}")
        self.wait(lambda: self.rendered() > 0, what="the topology drawn")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def rendered(self) -> int:
        return int(self.js("return Number(document.querySelector('#topology').dataset.rendered || 0)"))

    def wait(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "the page") -> float:
        """Poll check until it is true; returns the seconds it took."""
        start = time.monotonic()
        while True:
            if check():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                logs = [e["message"] for e in self.driver.get_log("browser")][-5:]
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page is at "
                                     f"{self.driver.current_url}; its last console messages: {logs}")
            time.sleep(0.05)

    def node(self, ident: str) -> dict[str, str] | None:
        """The drawn element of a resource (its data attributes and text), or None."""
        return self.js("""const el = document.querySelector(`#topology [data-id="${arguments[0]}"]`);
            return el ? {...el.dataset, text: el.textContent, cls: el.getAttribute('class') || ''} : null;""", ident)

    def named(self, name: str) -> dict[str, str] | None:
        return self.js("""const el = document.querySelector(`#topology [data-name="${arguments[0]}"]`);
            return el ? {...el.dataset, text: el.textContent} : null;""", name)

    def click(self, css: str) -> None:
        """Click; again if the element was drawn anew meanwhile (the topology redraws on every change)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for attempt in range(5):
            try:
                self.driver.find_element("css selector", css).click()
                return
            except StaleElementReferenceException:
                if attempt == 4:
                    raise
                time.sleep(0.05)

    def fill(self, css: str, value: str) -> None:
        el = self.driver.find_element("css selector", css)
        el.clear()
        el.send_keys(value)

    def choose(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.driver.find_element("css selector", css)).select_by_value(value)

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        """A PNG of the page in the test's tmp_path, copied to $FERMION_TEST_ARTIFACTS when that is set."""
        path = tmp_path / f"{name}.png"
        self.driver.save_screenshot(str(path))
        folder = os.environ.get("FERMION_TEST_ARTIFACTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(folder) / path.name)
        return path

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = browser_missing()
    if reason is not None:
        print(f"skipping the console's browser tests: {reason}")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="fermion-chromium-") as profile:
        b = Browser(Path(profile))
        try:
            yield b
        finally:
            b.quit()


class Rest:
    """The API over HTTP as one noauth identity, asserting success."""

    def __init__(self, endpoint: str, project: str = "admin-project", roles: str = "admin") -> None:
        self.endpoint = endpoint
        self.headers = {"X-Project-Id": project, "X-Roles": roles}

    def as_(self, project: str, roles: str = "member") -> Rest:
        return Rest(self.endpoint, project, roles)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.endpoint + path, json=body, headers=self.headers, timeout=30)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def create(self, collection: str, **attrs: Any) -> dict[str, Any]:
        member = {"security-groups": "security_group", "floatingips": "floatingip"}.get(collection, collection[:-1])
        return dict(self.call("POST", f"/v2.0/{collection}", {member: attrs})[member])

    def network_with_subnet(self, name: str, cidr: str, **attrs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        net = self.create("networks", name=name, **attrs)
        return net, self.create("subnets", network_id=net["id"], cidr=cidr, ip_version=4, name=f"{name}-v4")


def demo_topology(rest: Rest, project: str = "demo") -> dict[str, str]:
    """An external network, a router with its gateway and two networks, five ports, a floating IP and a
    network of nobody's router; returns their ids by name."""
    ids: dict[str, str] = {}
    public, _ = rest.network_with_subnet("public", "198.19.0.0/24", **{"router:external": True})
    ids["public"] = public["id"]
    demo = rest.as_(project)
    router = demo.create("routers", name="r1", external_gateway_info={"network_id": public["id"]})
    ids["r1"] = router["id"]
    for name, cidr, vms in (("web", "10.1.0.0/24", ["web1", "web2", "web3"]), ("db", "10.2.0.0/24", ["db1", "db2"])):
        net, subnet = demo.network_with_subnet(name, cidr)
        ids[name] = net["id"]
        demo.call("PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
        for vm in vms:
            ids[vm] = demo.create("ports", network_id=net["id"], name=vm, device_id=vm,
                                  device_owner="compute:nova")["id"]
    ids["fip"] = demo.create("floatingips", floating_network_id=public["id"], port_id=ids["web1"])["id"]
    ids["isolated"] = demo.network_with_subnet("isolated", "10.9.0.0/24")[0]["id"]
    return ids
