"""Debian's headless Chromium driven by Selenium, for the web console's tests and bench/console.py: started
with the flags this machine's closed network needs and a fresh profile, and nothing downloaded at run time."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,900")


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
                shown = self.js("return document.querySelector('#toast')?.textContent")
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page is at "
                                     f"{self.driver.current_url}, shows {shown!r}; its last console messages: "
                                     f"{logs}")
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
