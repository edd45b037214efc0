"""An agent process serves its own /metrics, the server's /metrics sees it come and go, and it stops on
SIGTERM: `fermion serve` and `fermion agent l3` over RabbitMQ. The agent manages an emulated host whose
namespace does not exist and is given no routers, so it changes nothing on the machine (no root needed)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import servers
from tests.support.prom import Scrape

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
SYS_TGKILL = 234  # x86_64: a signal to one thread of a process
L3 = "L3 agent"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def scrape(url: str) -> Scrape:
    try:
        return Scrape(httpx.get(url, timeout=2).text)
    except httpx.HTTPError:
        return Scrape("")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    if not servers.rabbitmq_available():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    prefix = f"fermion-test-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "fermion.toml"
    path.write_text(f'[rpc]\ntransport_url = "{RABBIT_URL}"\nprefix = "{prefix}"\n'
                    "[agents]\nreport_interval = 0.5\nagent_down_time = 2.0\n")
    yield path
    import kombu  # a deployment keeps its hints exchange; a test must not leave one on the shared broker

    with kombu.Connection(RABBIT_URL, connect_timeout=2) as conn:
        conn.default_channel.exchange_delete(f"{prefix}.hints")


def test_an_agent_process_serves_its_metrics_and_the_server_sees_it_alive_then_dead(
        tmp_path: Path, config: Path) -> None:
    host = f"obs-{uuid.uuid4().hex[:8]}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("FERMION_LOG", "FERMION_RPC"))},
           "FERMION_STATE_DIR": str(tmp_path)}
    agent_metrics = f"127.0.0.1:{servers.free_port()}"
    log = tmp_path / "agent.log"
    with servers.live_server(f"sqlite:///{tmp_path / 'f.sqlite'}", extra_env={**env, "FERMION_CONFIG": str(config)}) \
            as endpoint:
        with open(log, "wb") as out:
            agent = subprocess.Popen(servers.fermion_cmd("agent", "l3", "--config", str(config), "--host", host,
                                                         "--netns", host, "--metrics-address", agent_metrics),
                                     env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for("the server to count the agent alive", lambda: scrape(f"{endpoint}/metrics").value(
                "fermion_agent_alive", agent_type=L3, host=host) == 1)
            wait_for("a full sync", lambda: scrape(f"http://{agent_metrics}/metrics").value(
                "fermion_agent_syncs_total", agent_type=L3, host=host, sync="full", result="ok") >= 1)
            mine = scrape(f"http://{agent_metrics}/metrics")
            for phase in ("view", "apply", "report"):
                assert mine.value("fermion_agent_sync_duration_seconds_count", agent_type=L3, host=host,
                                  sync="full", phase=phase) >= 1
            assert mine.value("fermion_rpc_messages_total", direction="sent", method="report_state") >= 1
            assert mine.value("fermion_rpc_messages_total", direction="sent", method="get_l3_view") >= 1
            server = scrape(f"{endpoint}/metrics")
            assert server.value("fermion_rpc_messages_total", direction="received", method="report_state") >= 1
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(15)
        wait_for("the server to count the agent dead", lambda: scrape(f"{endpoint}/metrics").value(
            "fermion_agent_alive", agent_type=L3, host=host) == 0 and scrape(f"{endpoint}/metrics").series(
            "fermion_agent_alive") != [], timeout=10)
    text = log.read_text()
    assert f"metrics on http://{agent_metrics}/metrics" in text
    assert f" INFO fermion.agent.runtime fermion-l3-agent on {host}: full sync took view " in text, text


def test_an_agent_refuses_to_start_when_its_metrics_address_is_taken(tmp_path: Path, config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        run = subprocess.run(servers.fermion_cmd("agent", "l3", "--config", str(config), "--host", "obs-x",
                                                 "--netns", "obs-x", "--metrics-address", address),
                             capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert f"fermion agent: cannot serve metrics on {address}" in run.stderr


def test_an_agent_stops_on_sigterm_whichever_thread_the_kernel_hands_it_to(tmp_path: Path, config: Path) -> None:
    """kill(1) lets the kernel pick any thread of the process; one given to an RPC thread must stop the agent
    too (it once left the main thread waiting forever: a distributed test's teardown hung on it)."""
    host = f"obs-{uuid.uuid4().hex[:8]}"
    with open(tmp_path / "agent.log", "wb") as out:
        agent = subprocess.Popen(servers.fermion_cmd("agent", "l3", "--config", str(config), "--host", host,
                                                     "--netns", host), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the agent's RPC threads", lambda: len(os.listdir(f"/proc/{agent.pid}/task")) >= 4)
        time.sleep(1)  # past start(): the main thread is waiting for the signal
        other = min(int(t) for t in os.listdir(f"/proc/{agent.pid}/task") if int(t) != agent.pid)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, agent.pid, other, signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
        assert agent.wait(10) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
