"""What an operator sees of a running `fermion serve` / `fermion all-in-one`, over real HTTP and from the
process's real output: /healthz, /openapi.json, /metrics (one worker and several), the access log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import servers
from tests.support.prom import Scrape

PROJECT = {"X-Project-Id": "tenant-a", "X-Roles": "member"}


def test_healthz_and_openapi_json_are_served_over_http(tmp_path: Path) -> None:
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}") as endpoint:
        health = httpx.get(f"{endpoint}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        doc = httpx.get(f"{endpoint}/openapi.json")  # no credentials needed, like the version document
        assert doc.status_code == 200, doc.text
        assert doc.headers["content-type"] == "application/json"
        spec = doc.json()
        assert spec["openapi"].startswith("3.")
        assert "/v2.0/networks" in spec["paths"] and "/v2.0/ports/{id}" in spec["paths"]
        # the Neutron `.json` suffix still works on API paths
        assert httpx.get(f"{endpoint}/v2.0/networks.json", headers=PROJECT).json() == {"networks": []}


def test_metrics_scraped_over_http_count_what_clients_do(tmp_path: Path) -> None:
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}") as endpoint, \
            httpx.Client(base_url=endpoint, headers=PROJECT) as client:
        before = Scrape(httpx.get(f"{endpoint}/metrics").text)
        for i in range(3):
            assert client.post("/v2.0/networks", json={"network": {"name": f"n{i}"}}).status_code == 201
        page = httpx.get(f"{endpoint}/metrics")
        assert page.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        after = Scrape(page.text)
    key = {"resource": "networks", "method": "POST", "status": "201"}
    assert before.value("fermion_api_requests_total", **key) == 0
    assert after.value("fermion_api_requests_total", **key) == 3
    assert after.value("fermion_api_request_duration_seconds_count", resource="networks", method="POST") == 3
    assert after.value("fermion_db_pool_size") > 0
    assert after.value("fermion_rpc_messages_total", direction="sent", method="hint") >= 3


def test_with_several_workers_metrics_add_up_over_all_of_them(tmp_path: Path) -> None:
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}", workers=2) as endpoint:
        for i in range(8):  # new connections: uvicorn's workers share the listening socket
            assert httpx.post(f"{endpoint}/v2.0/networks", json={"network": {"name": f"n{i}"}},
                              headers=PROJECT).status_code == 201
        # whichever worker answers the scrape, it shows every worker's requests
        for _ in range(4):
            scrape = Scrape(httpx.get(f"{endpoint}/metrics").text)
            assert scrape.value("fermion_api_requests_total", resource="networks", method="POST",
                                status="201") == 8


def access_lines(log: Path) -> list[str]:
    """The server's access-log lines, but for the polls of GET / that waited for it to start."""
    return [line for line in log.read_text().splitlines()
            if " fermion.access " in line and " path=/ " not in line]


def test_every_request_writes_one_access_line_at_info_by_default(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_LOG")}
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}", extra_env=env, log=log) as endpoint, \
            httpx.Client(base_url=endpoint, headers=PROJECT) as client:
        created = client.post("/v2.0/networks", json={"network": {"name": "logged"}})
        missing = client.get("/v2.0/ports/5e0a3b44-0000-4000-8000-000000000000", params={"fields": "id"})
        anonymous = httpx.get(f"{endpoint}/healthz")
        # buffered for at most half a second, so `tail -f` follows a running server
        deadline = time.monotonic() + 3
        while anonymous.headers["x-openstack-request-id"] not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    lines = access_lines(log)  # the server has stopped: everything it logged is in the file
    assert len(lines) == len(set(lines))
    for resp, method, path, status, project in (
            (created, "POST", "/v2.0/networks", 201, "tenant-a"),
            (missing, "GET", "/v2.0/ports/5e0a3b44-0000-4000-8000-000000000000?fields=id", 404, "tenant-a"),
            (anonymous, "GET", "/healthz", 200, "-")):
        request_id = resp.headers["x-openstack-request-id"]
        mine = [line for line in lines if f"request_id={request_id} " in line]
        assert len(mine) == 1, lines
        assert re.search(rf" INFO fermion\.access method={method} path={re.escape(path)} status={status} "
                         rf"duration_ms=\d+\.\d request_id={request_id} project_id={re.escape(project)}$",
                         mine[0]), mine


def test_json_logs_carry_the_request_fields_as_keys(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}", log=log, args=("--log-format", "json")) \
            as endpoint:
        resp = httpx.post(f"{endpoint}/v2.0/networks", json={"network": {"name": "j"}}, headers=PROJECT)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "fermion.access" and r["path"] != "/"]  # "/": the start poll
    assert len(access) == 1
    assert access[0] | {"time": None} == {
        "time": None, "level": "INFO", "logger": "fermion.access", "message": "POST /v2.0/networks 201",
        "method": "POST", "path": "/v2.0/networks", "status": 201, "duration_ms": access[0]["duration_ms"],
        "request_id": resp.headers["x-openstack-request-id"], "project_id": "tenant-a"}
    assert isinstance(access[0]["duration_ms"], float)


def test_log_level_comes_from_the_config_file_and_the_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "fermion.toml"
    config.write_text('[logging]\nlevel = "warning"\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FERMION_LOG")}, "FERMION_CONFIG": str(config)}
    url = f"sqlite:///{tmp_path / 'f.sqlite'}"
    for args, expected in (((), 0), (("--log-level", "info"), 1)):
        log = tmp_path / f"server{len(args)}.log"
        with servers.live_server(url, extra_env=env, args=args, log=log) as endpoint:
            httpx.get(f"{endpoint}/v2.0/networks", headers=PROJECT)
        assert len(access_lines(log)) == expected, log.read_text()


def test_all_in_one_prints_an_access_line_per_request(tmp_path: Path) -> None:
    port = servers.free_port()
    config = tmp_path / "fermion.toml"
    config.write_text(f'[server]\nport = {port}\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FERMION_LOG")},
           "FERMION_STATE_DIR": str(tmp_path / "state")}
    log = tmp_path / "aio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(servers.fermion_cmd("all-in-one", "--config", str(config)), env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert servers.wait_until_up(endpoint, proc), log.read_text()
        resp = httpx.get(f"{endpoint}/v2.0/networks")
    finally:
        servers.stop(proc)
    text = log.read_text()
    assert "fermion: serving" in text
    request_id = resp.headers["x-openstack-request-id"]
    assert re.search(rf"fermion\.access method=GET path=/v2\.0/networks status=200 duration_ms=[\d.]+ "
                     rf"request_id={request_id} project_id=fermion-default", text), text
