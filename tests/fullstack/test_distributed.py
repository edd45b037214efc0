"""Distributed mode with real processes: `fermion serve` on PostgreSQL, agents as `fermion agent`
processes talking over RabbitMQ (through a TCP proxy this test owns, so it can cut them off the broker
without touching the machine's RabbitMQ). Same scenarios as embedded mode, plus outages."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fermion.dataplane import netns
from fermion.lab import instances
from fermion.runtime.lab import spawn_agents
from tests.dataplane.lab import Lab, built_lab, loss_of, ping_loss, require_root
from tests.support.servers import (
    fermion_cmd,
    free_port,
    postgres_available,
    rabbitmq_available,
    temporary_database,
    wait_until_up,
)
from tests.support.tcpproxy import TcpProxy

RABBIT = ("127.0.0.1", 5672)


class Server:
    def __init__(self, url: str, env: dict[str, str], log: Path) -> None:
        self.url, self.env, self.log = url, env, log
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(fermion_cmd("serve", "--host", "127.0.0.1", "--port", str(self.port),
                                                 "--database", self.url), env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT)
        out.close()
        if not wait_until_up(self.endpoint, self.proc):
            raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM first: with [server] workers > 1, uvicorn's parent then stops its worker processes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def dlab(tmp_path: Path) -> Iterator[Lab]:
    with distributed_lab(tmp_path) as lab:
        yield lab


@contextmanager
def distributed_lab(tmp_path: Path, config_text: str = "", **topology: Any) -> Iterator[Lab]:
    """config_text: more of the server's and agents' config file, e.g. "[server]\nworkers = 2\n"; topology: as
    built_lab takes it (hosts, network_hosts...)."""
    require_root()
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not rabbitmq_available(*RABBIT):
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    config = tmp_path / "fermion.toml"
    config.write_text("[agents]\nreport_interval = 1.0\nagent_down_time = 6.0\nresync_interval = 5.0\n" + config_text)
    prefix = f"fermion-test-{uuid.uuid4().hex[:8]}"
    proxy = TcpProxy(*RABBIT)
    proxy_port = proxy.start()
    base_env = {**os.environ, "FERMION_CONFIG": str(config), "FERMION_RPC_PREFIX": prefix,
                "FERMION_STATE_DIR": str(tmp_path), "FERMION_LOG_LEVEL": "info"}
    pids: list[int] = []
    with temporary_database("postgres", tmp_path) as url:
        subprocess.run(fermion_cmd("db", "upgrade", "--database", url), check=True, env=base_env,
                       capture_output=True)
        server = Server(url, {**base_env, "FERMION_TRANSPORT_URL": f"amqp://guest:guest@{RABBIT[0]}:{RABBIT[1]}//"},
                        tmp_path / "server.log")
        server.start()
        try:
            with built_lab(server.endpoint, tmp_path, "distributed", **topology) as lab:
                agent_env = {"FERMION_TRANSPORT_URL": f"amqp://guest:guest@127.0.0.1:{proxy_port}//",
                             "FERMION_CONFIG": str(config), "FERMION_RPC_PREFIX": prefix,
                             "FERMION_STATE_DIR": str(tmp_path)}
                lab.state.agent_env = agent_env
                try:
                    for host in lab.state.hosts.values():
                        pids += [a.pid for a in spawn_agents(lab.state, host, tmp_path / "logs")]
                    lab.extra.update(server=server, proxy=proxy, logs=tmp_path / "logs", pids=pids)
                    lab.wait_agents(timeout=45)
                    yield lab
                finally:
                    _stop(pids)
        finally:
            server.stop()
            proxy.stop()
            _drop_broker_objects(prefix)


def _drop_broker_objects(prefix: str) -> None:
    """A deployment keeps its hints exchange; a test must not leave one behind on the shared broker."""
    import kombu

    with kombu.Connection(f"amqp://guest:guest@{RABBIT[0]}:{RABBIT[1]}//", connect_timeout=2) as conn:
        conn.default_channel.exchange_delete(f"{prefix}.hints")


def _stop(pids: list[int]) -> None:
    """SIGTERM, SIGKILL for any still there after 20 s: an agent that ignores SIGTERM fails its own test
    (test_agent_metrics.py), it does not hang the suite."""
    netns.terminate(pids, 20)
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def test_distributed_instances_get_dhcp_and_ping_across_hosts(dlab: Lab) -> None:
    dlab.network("blue", "10.50.0.0/24")
    vm1 = dlab.boot("blue", "compute1", "vm1")
    vm2 = dlab.boot("blue", "compute2", "vm2")
    assert dlab.ping("vm1", "vm2")
    for vm in (vm1, vm2):
        instances.wait_port_status(dlab.api, vm.port_id, "ACTIVE")


def test_server_killed_and_restarted_converges(dlab: Lab) -> None:
    dlab.network("blue", "10.51.0.0/24")
    dlab.boot("blue", "compute1", "vm1")
    dlab.boot("blue", "compute2", "vm2")
    server = dlab.extra["server"]
    pinger = ping_loss(dlab, "vm1", "vm2", seconds=3)
    server.kill()  # the data plane does not depend on the server being up
    out, _ = pinger.communicate(timeout=30)
    sent, received = loss_of(out)
    assert received == sent, out
    restarted = datetime.now(UTC).replace(tzinfo=None)
    server.start()
    dlab.wait_agents(timeout=30, since=restarted)
    vm3 = dlab.boot("blue", "compute2", "vm3")  # needs hints, views and DHCP: everything works again
    assert dlab.ping("vm1", "vm3")
    instances.wait_port_status(dlab.api, vm3.port_id, "ACTIVE")


def test_agents_cut_off_the_broker_converge_after_it_returns(dlab: Lab) -> None:
    dlab.network("blue", "10.52.0.0/24")
    dlab.boot("blue", "compute1", "vm1")
    proxy = dlab.extra["proxy"]
    proxy.cut()
    errors: list[BaseException] = []

    def boot() -> None:
        try:  # the port is created now, while every hint to the agents is lost
            dlab.boot("blue", "compute2", "vm2")
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)

    t = threading.Thread(target=boot)
    t.start()
    threading.Event().wait(4)
    proxy.restore()
    t.join(60)
    assert not errors, errors
    assert dlab.ping("vm1", "vm2")
    instances.wait_port_status(dlab.api, dlab.state.instances["vm2"].port_id, "ACTIVE")


def test_distributed_router_snat_floating_ip_and_security_group(dlab: Lab) -> None:
    """The L3 and security-group scenarios over RabbitMQ and PostgreSQL, agents as processes."""
    from tests.dataplane.test_l3 import test_routing_snat_and_floating_ip
    from tests.dataplane.test_security import remote_group_scenario

    test_routing_snat_and_floating_ip(dlab)
    remote_group_scenario(dlab, "net3")


def test_distributed_floating_ip_status_follows_the_data_plane(dlab: Lab) -> None:
    """ACTIVE once the floating IP carries traffic, ERROR while the router's NAT cannot be loaded (the reason in
    the L3 agent process's log), over RabbitMQ and PostgreSQL."""
    from tests.dataplane.test_l3 import floating_ip_status_scenario

    floating_ip_status_scenario(dlab, lambda: (dlab.extra["logs"] / "l3-network1.log").read_text())


def test_distributed_security_groups_and_tenant_isolation(dlab: Lab) -> None:
    """Exactly what a rule opens, anti-spoofing, and two tenants' routers on one CIDR, agents as processes."""
    from tests.dataplane import test_security as sec

    sec.test_a_rule_opens_tcp_22_and_only_tcp_22(dlab)
    for name in ("server", "client"):
        instances.remove(dlab.state, dlab.api, name)
    sec.spoofing_scenario(dlab, "net-spoof", "10.3.0.0/24")
    sec.test_tenant_routers_with_the_same_cidr_are_isolated(dlab)


def test_distributed_changes_cut_the_connections_they_no_longer_allow(dlab: Lab) -> None:
    """Rule deleted, groups changed, a remote member leaving, port security on, port deleted: within a second
    of the API call the flows that lost their rule stop, agents as processes over RabbitMQ; and two tenants
    with the same addresses on one host keep their own connection state."""
    from tests.dataplane.test_security import revocation_scenario, same_addresses_scenario

    revocation_scenario(dlab)
    same_addresses_scenario(dlab)
