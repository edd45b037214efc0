"""The console behind Keystone: log in with a user name and password (through the server's /ui/login) or with a
pasted token; the event stream wants a token like the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import servers
from tests.support.browser import Browser
from tests.support.fake_keystone import FakeKeystone, sample_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeKeystone, str]]:
    tmp = tmp_path_factory.mktemp("console-keystone")
    ks = sample_cloud()
    with ks.serve() as ks_url:
        config = tmp / "fermion.toml"
        config.write_text(f'[auth]\nstrategy = "keystone"\n\n[keystone]\nauth_url = "{ks_url}/v3"\n'
                          'username = "neutron"\npassword = "neutron-pw"\nproject_name = "service"\n')
        url = f"sqlite:///{tmp / 'ks.sqlite'}"
        with servers.live_server(url, extra_env={"FERMION_CONFIG": str(config)}) as endpoint:
            yield ks, endpoint


def test_the_event_stream_and_session_want_a_token(cloud: tuple[FakeKeystone, str]) -> None:
    ks, endpoint = cloud
    assert httpx.get(endpoint + "/ui/config.json").json()["auth"] == "keystone"
    assert httpx.get(endpoint + "/ui/").status_code == 200  # the page itself is public: it holds no data
    for path in ("/ui/events", "/ui/session"):
        r = httpx.get(endpoint + path, headers={"X-Project-Id": "demo-project", "X-Roles": "admin"})
        assert r.status_code == 401, path
    token = ks.issue_token("alice", "demo")
    who = httpx.get(endpoint + "/ui/session", headers={"X-Auth-Token": token}).json()
    assert (who["project_id"], who["admin"]) == ("demo-project", False)
    r = httpx.post(endpoint + "/ui/login", json={"username": "alice", "password": "wrong", "project": "demo"})
    assert r.status_code == 401
    r = httpx.post(endpoint + "/ui/login", json={"username": "alice"})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "BadRequest"


def test_log_in_with_a_password_or_a_token(browser: Browser, cloud: tuple[FakeKeystone, str],
                                           tmp_path: Path) -> None:
    ks, endpoint = cloud
    alice = {"X-Auth-Token": ks.issue_token("alice", "demo")}
    r = httpx.post(endpoint + "/v2.0/networks", json={"network": {"name": "alice-net"}}, headers=alice)
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    browser.open(endpoint)
    assert browser.js("return document.querySelector('#noauth-form').hidden")
    browser.fill("#password-form input[name=username]", "alice")
    browser.fill("#password-form input[name=password]", "not-hers")
    browser.fill("#password-form input[name=project]", "demo")
    browser.click("#password-form button[type=submit]")
    browser.wait(lambda: browser.js("return document.querySelector('#login-error').textContent"),
                 what="the log-in error")
    browser.fill("#password-form input[name=password]", "alice-pw")
    browser.click("#password-form button[type=submit]")
    browser.wait(lambda: browser.rendered() > 0, what="alice's topology")
    assert browser.js("return document.querySelector('#who').dataset.project") == "demo-project"
    assert browser.node(net["id"]) is not None
    browser.screenshot(tmp_path, "console-keystone")
    # bob pastes a token of his: alice's network is not his to see
    browser.open(endpoint)
    browser.fill("#token-form input[name=token]", ks.issue_token("bob", "other"))
    browser.click("#token-form button[type=submit]")
    browser.wait(lambda: browser.rendered() > 0, what="bob's topology")
    assert browser.js("return document.querySelector('#who').dataset.project") == "other-project"
    assert browser.node(net["id"]) is None
