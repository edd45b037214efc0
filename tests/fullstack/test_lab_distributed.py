"""`fermion lab up --distributed` as the README writes it: a `fermion serve` and a config file per deployment,
agents started by the lab as processes over the machine's RabbitMQ, each deployment with its own RPC prefix."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fermion.dataplane import netns
from fermion.lab.instances import Api
from fermion.lab.state import LabState, state_path
from tests.dataplane.lab import Lab, lost_during, ping_ns, require_root
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of
from tests.dataplane.test_l3_ha import active_host, hosting
from tests.fullstack.test_distributed import RABBIT, Server, _drop_broker_objects
from tests.support.servers import (
    fermion_cmd,
    postgres_available,
    rabbitmq_available,
    temporary_database,
)

L2, OVS, DHCP, L3 = "Linux bridge agent", "Open vSwitch agent", "DHCP agent", "L3 agent"


@dataclass
class Deployment:
    config: Path
    server: Server
    state_dir: Path  # the lab's (FERMION_STATE_DIR of the `fermion lab` commands)
    lab_prefix: str
    rpc_prefix: str

    def lab(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`fermion lab ...` with nothing from the environment: the agents' settings come from --config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
        env["FERMION_STATE_DIR"] = str(self.state_dir)
        return subprocess.run(fermion_cmd("lab", *args), env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def agents(self) -> set[tuple[str, str]]:
        return {(a["host"], a["agent_type"]) for a in Api(self.server.endpoint).agents()}

    def agent_pids(self) -> set[int]:
        """The agent processes running for this lab's hosts, as `ps` shows them (looked at, never killed)."""
        return set(self.agent_commands())

    def agent_commands(self) -> dict[int, str]:
        """The same, with their command lines."""
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"agent" in argv and any(a.startswith(f"{self.lab_prefix}-".encode()) for a in argv):
                found[int(pid)] = b" ".join(argv).decode(errors="replace")
        return found


@contextmanager
def deployment(tmp_path: Path, name: str) -> Iterator[Deployment]:
    require_root()
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not rabbitmq_available(*RABBIT):
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    home = tmp_path / name
    home.mkdir()
    rpc_prefix = f"fermion-test-{uuid.uuid4().hex[:8]}"
    with temporary_database("postgres", home) as url:
        config = home / "distributed.toml"
        config.write_text(f'[database]\nurl = "{url}"\n\n[rpc]\ntransport_url = "amqp://guest:guest@{RABBIT[0]}:'
                          f'{RABBIT[1]}//"\nprefix = "{rpc_prefix}"\n\n[agents]\nreport_interval = 1.0\n'
                          "agent_down_time = 6.0\nresync_interval = 5.0\n")
        env = {**os.environ, "FERMION_CONFIG": str(config), "FERMION_STATE_DIR": str(home / "server")}
        subprocess.run(fermion_cmd("db", "upgrade"), env=env, check=True, capture_output=True)
        server = Server(url, env, home / "server.log")
        dep = Deployment(config, server, home / "lab", "ft" + uuid.uuid4().hex[:6], rpc_prefix)
        try:
            server.start()
            yield dep
        finally:
            if state_path(dep.state_dir).exists():
                dep.lab("down")
            server.kill()
            for ns in netns.names(f"{dep.lab_prefix}-"):
                netns.delete(ns)
            _drop_broker_objects(rpc_prefix)
    assert not dep.agent_pids(), "agent processes left behind"


def test_two_distributed_labs_on_one_broker_restart_and_down(tmp_path: Path) -> None:
    with deployment(tmp_path, "a") as a, deployment(tmp_path, "b") as b:
        up = a.lab("up", "--distributed", "--config", str(a.config), "--endpoint", a.server.endpoint,
                   "--prefix", a.lab_prefix, "--hosts", "ca,na", "--dhcp-host", "na")
        assert up.returncode == 0, up.stderr
        assert "lab up (distributed): hosts ca, na; agents alive" in up.stdout
        # the options before the verb still work
        up = b.lab("--endpoint", b.server.endpoint, "--config", str(b.config), "up", "--distributed",
                   "--prefix", b.lab_prefix, "--hosts", "nb")
        assert up.returncode == 0, up.stderr
        # the agents have the whole config, RPC prefix included: each server sees its own lab's agents only
        assert a.agents() == {("ca", L2), ("na", L2), ("na", DHCP), ("na", L3)}
        assert b.agents() == {("nb", L2), ("nb", DHCP), ("nb", L3)}
        assert len(a.agent_pids()) == 4 and len(b.agent_pids()) == 3

        api = Api(a.server.endpoint)
        net = api.post("networks", {"name": "blue"})
        api.post("subnets", {"network_id": net["id"], "cidr": "10.29.0.0/24", "ip_version": 4})
        for host, vm in (("ca", "vm1"), ("na", "vm2")):
            boot = a.lab("boot", "--network", "blue", "--host", host, vm)
            assert boot.returncode == 0, boot.stderr
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab = Lab(api=api, state=state, state_dir=a.state_dir)
        before = a.agent_pids()
        done: list[subprocess.CompletedProcess[str]] = []
        sent, lost = lost_during(lab, "vm1", "vm2", lambda: done.append(a.lab("restart-agent", "ca", "l2")))
        assert done[0].returncode == 0 and "host ca: restarted l2 agent; alive again" in done[0].stdout, done[0].stderr
        assert sent > 50 and not lost, f"{len(lost)} of {sent} echo requests lost: {lost}"
        after = a.agent_pids()
        assert len(after) == 4 and len(before & after) == 3  # a new l2 process on ca, the others kept

        down = a.lab("down")
        assert down.returncode == 0, down.stderr
        assert not a.agent_pids()  # also the one started by the restart
        assert not netns.names(f"{a.lab_prefix}-")
        assert len(b.agent_pids()) == 3 and b.agents() == {("nb", L2), ("nb", DHCP), ("nb", L3)}  # untouched


def test_a_failed_distributed_up_leaves_nothing_running(tmp_path: Path) -> None:
    with deployment(tmp_path, "a") as a:
        other = a.config.with_name("other.toml")  # a prefix no server listens on
        other.write_text(a.config.read_text().replace(a.rpc_prefix, f"{a.rpc_prefix}-other"))
        try:
            up = a.lab("up", "--distributed", "--config", str(other), "--endpoint", a.server.endpoint,
                       "--prefix", a.lab_prefix, "--wait", "4")
        finally:
            _drop_broker_objects(f"{a.rpc_prefix}-other")
        assert up.returncode == 1
        assert "agents did not report in 4 s" in up.stderr, up.stderr
        assert f"prefix '{a.rpc_prefix}-other' (from {other})" in up.stderr
        assert "embedded" not in up.stderr
        assert not a.agent_pids()  # all five agents it started are stopped
        assert not netns.names(f"{a.lab_prefix}-") and not state_path(a.state_dir).exists()


def test_losing_and_healing_the_active_host_of_an_ha_router(tmp_path: Path) -> None:
    """`fermion lab fail` kills the host's agent processes; `heal` starts new ones."""
    with deployment(tmp_path, "a") as a:
        up = a.lab("up", "--distributed", "--config", str(a.config), "--endpoint", a.server.endpoint,
                   "--prefix", a.lab_prefix, "--hosts", "compute1", "--network-hosts", "2")
        assert up.returncode == 0, up.stderr
        assert "hosts compute1, network1, network2; agents alive" in up.stdout
        api = Api(a.server.endpoint)
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab = Lab(api=api, state=state, state_dir=a.state_dir)
        net = lab.network("blue", "10.1.0.0/24")
        public = api.network("public")
        router = api.post("routers", {"name": "r-ha", "ha": True,
                                      "external_gateway_info": {"network_id": public["id"]}})
        rid = router["id"]
        put(lab, f"/v2.0/routers/{rid}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
        boot = a.lab("boot", "--network", "blue", "--host", "compute1", "vm1")
        assert boot.returncode == 0, boot.stderr
        (port,) = api._ok(api.http.get("/v2.0/ports", params={"device_id": "vm1"}))["ports"]
        allow_from_anywhere(lab, "icmp")
        fip = api.post("floatingips", {"floating_network_id": public["id"],
                                       "port_id": port["id"]})["floating_ip_address"]
        lab.wait(lambda: active_host(lab, rid) is not None, 30, "one instance to be active, the other standby")
        lab.wait(lambda: ping_ns(state.external, fip, count=1), 30, "the floating IP to answer")
        lost = active_host(lab, rid)
        assert lost is not None
        survivor = "network2" if lost == "network1" else "network1"
        commands = a.agent_commands()
        before = set(commands)
        lost_ns = f"{a.lab_prefix}-{lost}"
        on_lost = {pid for pid, cmd in commands.items() if f" {lost_ns} " in f"{cmd} "}
        assert len(on_lost) == 3, commands  # its l2, dhcp and l3 agents

        failed = a.lab("fail", lost)
        assert failed.returncode == 0, failed.stderr
        assert f"host {lost} failed: agent processes killed, links cut" in failed.stdout
        left = a.agent_commands()
        assert set(left) == before - on_lost, f"before: {commands}\nafter: {left}"
        lab.wait(lambda: ping_ns(state.external, fip, count=1), 15, "the floating IP to answer from the survivor")
        lab.wait(lambda: hosting(lab, rid) == {lost: "standby", survivor: "active"}, 15, "the survivor active")

        healed = a.lab("heal", lost)
        assert healed.returncode == 0, healed.stderr
        assert f"host {lost} healed: links up; agents alive again" in healed.stdout
        after = a.agent_pids()
        assert len(after) == len(before) and len(after - before) == 3  # three new processes
        lab.wait(lambda: hosting(lab, rid) == {lost: "standby", survivor: "active"}, 5, "one active instance")
        assert ping_ns(state.external, fip, count=2)


def test_a_distributed_router_with_agent_processes(tmp_path: Path) -> None:
    """`fermion lab up --distributed --dvr`: an L3 agent process on every host (dvr on compute1 and compute2,
    dvr_snat on two network nodes); a distributed router whose SNAT part is HA routes between its subnets on
    the instances' hosts, serves a floating IP from the instance's host and SNATs through the network nodes,
    also after the active SNAT host is lost."""
    with deployment(tmp_path, "a") as a:
        up = a.lab("up", "--distributed", "--dvr", "--config", str(a.config), "--endpoint", a.server.endpoint,
                   "--prefix", a.lab_prefix, "--hosts", "compute1,compute2", "--network-hosts", "2")
        assert up.returncode == 0, up.stderr
        assert "openstack router create --distributed" in up.stdout
        api = Api(a.server.endpoint)
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab = Lab(api=api, state=state, state_dir=a.state_dir)
        modes = {a["host"]: a["configurations"]["agent_mode"] for a in api.agents() if a["agent_type"] == L3}
        assert modes == {"compute1": "dvr", "compute2": "dvr", "network1": "dvr_snat", "network2": "dvr_snat"}
        public = api.network("public")
        router = api.post("routers", {"name": "r-dvr", "distributed": True, "ha": True,
                                      "external_gateway_info": {"network_id": public["id"]}})
        rid = router["id"]
        for name, cidr in (("red", "10.8.1.0/24"), ("green", "10.8.2.0/24")):
            net = lab.network(name, cidr)
            put(lab, f"/v2.0/routers/{rid}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
        allow_from_anywhere(lab, "icmp")
        for name, net, host in (("vm1", "red", "compute1"), ("vm2", "green", "compute2")):
            boot = a.lab("boot", "--network", net, "--host", host, name)
            assert boot.returncode == 0, boot.stderr
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab.state = state
        lab.wait(lambda: lab.ping("vm1", "vm2"), 30, "vm1 to reach vm2 through the distributed router")
        lab.wait(lambda: snat_active(lab, rid) is not None, 30, "one SNAT instance active")
        (port,) = api._ok(api.http.get("/v2.0/ports", params={"device_id": "vm2"}))["ports"]
        fip = api.post("floatingips", {"floating_network_id": public["id"],
                                       "port_id": port["id"]})["floating_ip_address"]
        lab.wait(lambda: ping_ns(state.external, fip, count=1), 30, "the floating IP to answer")
        lab.wait(lambda: lab.ping("vm1", "external"), 30, "vm1 to reach the outside through SNAT")

        lost = snat_active(lab, rid)
        assert lost is not None
        failed = a.lab("fail", lost)
        assert failed.returncode == 0, failed.stderr
        lab.wait(lambda: lab.ping("vm1", "external", count=1), 20, "SNAT through the surviving network node")
        assert ping_ns(state.external, fip, count=2)  # served by compute2 all along
        assert lab.ping("vm1", "vm2")


def snat_active(lab: Lab, router_id: str) -> str | None:
    """The network node whose SNAT instance is active while the other is a standby."""
    states = {h: s for h, s in hosting(lab, router_id).items() if h.startswith("network")}
    active = [h for h, s in states.items() if s == "active"]
    return active[0] if len(active) == 1 and sorted(states.values()) == ["active", "standby"] else None


def test_ovs_and_linux_bridge_hosts_with_agent_processes(tmp_path: Path) -> None:
    """`fermion lab up --distributed --hosts compute1:ovs,compute2 --agent ...`: an `fermion agent ovs` process
    per OVS host (its OVS daemons in the lab's state directory), DHCP and the router on an OVS network node;
    a VXLAN network spans the two kinds of host, a Geneve network runs between the OVS hosts; `lab down`
    stops the OVS daemons too."""
    with deployment(tmp_path, "a") as a:
        up = a.lab("up", "--distributed", "--config", str(a.config), "--endpoint", a.server.endpoint,
                   "--prefix", a.lab_prefix, "--hosts", "compute1:ovs,compute2:linuxbridge,network1:ovs")
        assert up.returncode == 0, up.stderr
        assert {("compute1", OVS), ("network1", OVS), ("compute2", L2), ("network1", DHCP)} <= a.agents()
        api = Api(a.server.endpoint)
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab = Lab(api=api, state=state, state_dir=a.state_dir)
        lab.network("mixed", "10.9.1.0/24")
        lab.network("gen", "10.9.2.0/24", **{"provider:network_type": "geneve", "provider:segmentation_id": 99})
        for name, net, host in (("vm1", "mixed", "compute1"), ("vm2", "mixed", "compute2"),
                                ("vm3", "gen", "compute1"), ("vm4", "gen", "network1")):
            boot = a.lab("boot", "--network", net, "--host", host, name)  # default group: members meet
            assert boot.returncode == 0, boot.stderr
        state = LabState.load(state_path(a.state_dir))
        assert state is not None
        lab.state = state
        lab.wait(lambda: lab.ping("vm1", "vm2"), 30, "vm1 (OVS host) to reach vm2 (Linux-bridge host)")
        lab.wait(lambda: lab.ping("vm3", "vm4"), 30, "vm3 to reach vm4 over Geneve")
        pidfiles = [a.state_dir / f"ovs-{h}" / "ovs-vswitchd.pid" for h in ("compute1", "network1")]
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(netns.alive(pid) for pid in pids)
        assert a.lab("down").returncode == 0
        assert not any(netns.alive(pid) for pid in pids)
