"""`fermion lab` as a user types it (a process per command) against an embedded lab: restarting agents
under a running ping, boot options, exec, DHCP leases released with their ports, ls and down."""

from __future__ import annotations

import os
import subprocess

from fermion.dataplane import netns
from fermion.lab.state import LabState, state_path
from tests.dataplane.lab import Lab, lost_during
from tests.support.servers import fermion_cmd


def fermion_lab(lab: Lab, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    env["FERMION_STATE_DIR"] = str(lab.state_dir)
    return subprocess.run(fermion_cmd("lab", *args), env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_restart_agent_keeps_a_running_ping(lab: Lab) -> None:
    lab.network("blue", "10.26.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    lab.boot("blue", "compute2", "vm2")
    supervisor = lab.extra["supervisor"]
    old = {host: list(agents) for host, agents in supervisor.running.items()}
    done: dict[str, subprocess.CompletedProcess[str]] = {}

    def restart() -> None:
        done["one"] = fermion_lab(lab, "restart-agent", "compute1", "l2")
        done["every"] = fermion_lab(lab, "restart-agent", "network1")

    sent, lost = lost_during(lab, "vm1", "vm2", restart)
    assert done["one"].returncode == 0, done["one"].stderr
    assert "host compute1: restarted l2 agent; alive again" in done["one"].stdout
    assert done["every"].returncode == 0, done["every"].stderr
    assert "host network1: restarted l2, dhcp, l3 agents; alive again" in done["every"].stdout
    assert sent > 100 and not lost, f"{len(lost)} of {sent} echo requests lost: {lost}"
    assert supervisor.running["compute1"][0] is not old["compute1"][0]
    assert not set(supervisor.running["network1"]) & set(old["network1"])
    assert supervisor.running["compute2"] == old["compute2"]  # only what was asked
    wrong = fermion_lab(lab, "restart-agent", "compute1", "dhcp")
    assert wrong.returncode == 1 and "host compute1 runs no dhcp agent (it runs: l2)" in wrong.stderr


def test_boot_options_exec_lease_release_ls_and_down(lab: Lab) -> None:
    net = lab.network("blue", "10.27.0.0/24")
    web = lab.api.post("security-groups", {"name": "web", "project_id": net["project_id"]})
    boot = fermion_lab(lab, "boot", "--network", "blue", "--host", "compute1", "--fixed-ip", "10.27.0.50",
                       "--security-group", "web", "--security-group", "default", "vm1")
    assert boot.returncode == 0 and "ip 10.27.0.50 (DHCP)" in boot.stdout, boot.stderr
    boot = fermion_lab(lab, "boot", "--network", "blue", "--host", "compute2", "--no-port-security", "vm2")
    assert boot.returncode == 0, boot.stderr
    saved = LabState.load(state_path(lab.state_dir))
    assert saved is not None
    vm1, vm2 = saved.instances["vm1"], saved.instances["vm2"]
    port1, port2 = lab.api.port(vm1.port_id), lab.api.port(vm2.port_id)
    assert port1 is not None and port2 is not None
    default = lab.api.security_group("default", net["project_id"])
    assert sorted(port1["security_groups"]) == sorted([web["id"], default["id"]])
    assert port1["fixed_ips"][0]["ip_address"] == "10.27.0.50"
    assert port2["port_security_enabled"] is False and port2["security_groups"] == []

    shown = fermion_lab(lab, "exec", "vm1", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert shown.returncode == 0 and "inet 10.27.0.50/24" in shown.stdout
    assert fermion_lab(lab, "exec", "vm1", "--", "ping", "-c", "1", "-W", "2", str(vm2.ip)).returncode == 0
    # vm2 is in none of vm1's groups, and default admits only its members
    assert fermion_lab(lab, "exec", "vm2", "--", "ping", "-c", "1", "-W", "1", "10.27.0.50").returncode == 1
    assert fermion_lab(lab, "exec", "vm2", "--", "sh", "-c", "exit 3").returncode == 3
    assert "ul0" in fermion_lab(lab, "exec", "compute1", "--", "ip", "link", "show", "ul0").stdout  # a host

    leases = lab.state_dir / "dhcp" / "network1" / net["id"] / "leases"
    assert vm1.mac in leases.read_text() and vm2.mac in leases.read_text()
    assert fermion_lab(lab, "rm", "vm1").returncode == 0
    lab.wait(lambda: vm1.mac not in leases.read_text(), what="vm1's DHCP lease released")
    lab.api.delete_port(vm2.port_id)
    lab.wait(lambda: vm2.mac not in leases.read_text(), what="vm2's DHCP lease released")
    listed = fermion_lab(lab, "ls")
    line = next(row for row in listed.stdout.splitlines() if "instance vm2" in row)
    assert line.endswith(f"mac {vm2.mac} port deleted") and listed.stdout.count("deleted") == 1, listed.stdout

    lab.network("vnet", "10.28.0.0/24", **{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                                           "provider:segmentation_id": 150})
    vlan = fermion_lab(lab, "boot", "--network", "vnet", "--host", "compute1", "vmv")
    assert vlan.returncode == 1 and "802.1Q" in vlan.stderr
    assert "carries local, flat (physical networks external, physnet1) and vxlan segments" in vlan.stderr
    assert "Open vSwitch hosts carry vlan" in vlan.stderr and "--hosts NAME:ovs" in vlan.stderr

    down = fermion_lab(lab, "down")
    assert down.returncode == 0 and "lab down: removed" in down.stdout, down.stderr
    assert not netns.names(f"{lab.state.prefix}-")
    assert lab.extra["supervisor"].running == {}
    assert not (lab.state_dir / "dhcp").exists()  # the DHCP state went with the lab
    assert not state_path(lab.state_dir).exists() and not (lab.state_dir / "udhcpc.sh").exists()
