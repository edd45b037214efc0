"""Instances: namespaces plugged like VMs (tap named from the port, the port's MAC, address from DHCP)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from fermion.dataplane import naming, netns, veth
from fermion.lab.state import LabInstance, LabState
from fermion.lab.topology import EXTERNAL_CIDR, EXTERNAL_GATEWAY, EXTERNAL_POOL

UDHCPC_SCRIPT_NAME = "udhcpc.sh"
# udhcpc's default script would rewrite the machine's /etc/resolv.conf (mount namespace is shared)
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" scope global ;;
  bound|renew)
    ip addr flush dev "$interface" scope global
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
    ;;
esac
exit 0
"""


class LabError(Exception):
    pass


class Api:
    """The few Neutron calls the lab makes, as an admin."""

    def __init__(self, endpoint: str, client: Any = None) -> None:
        headers = {"X-Roles": "admin", "X-Project-Id": "admin", "X-User-Id": "fermion-lab"}
        self.http = client or httpx.Client(base_url=endpoint, timeout=30, headers=headers)

    def _ok(self, resp: Any) -> Any:
        if resp.status_code >= 400:
            try:
                err = resp.json()["NeutronError"]
                message = f"{err['type']}: {err['message']}"
            except (ValueError, KeyError, TypeError):
                message = resp.text
            raise LabError(f"API {resp.status_code}: {message}")
        return resp.json() if resp.status_code != 204 else None

    def network(self, name_or_id: str) -> dict[str, Any]:
        found = self._ok(self.http.get(f"/v2.0/networks/{name_or_id}")) if re.fullmatch(
            r"[0-9a-f-]{36}", name_or_id) else None
        if found:
            return found["network"]
        nets = self._ok(self.http.get("/v2.0/networks", params={"name": name_or_id}))["networks"]
        if len(nets) != 1:
            raise LabError(f"network {name_or_id!r}: {'not found' if not nets else 'name is ambiguous'}")
        return nets[0]

    def security_group(self, name_or_id: str, project_id: str) -> dict[str, Any]:
        """By id, or by name among the project's groups (every project has its own "default")."""
        if re.fullmatch(r"[0-9a-f-]{36}", name_or_id):
            resp = self.http.get(f"/v2.0/security-groups/{name_or_id}")
            if resp.status_code != 404:
                return self._ok(resp)["security_group"]
        found = self._ok(self.http.get("/v2.0/security-groups", params={"name": name_or_id,
                                                                        "project_id": project_id}))
        groups = found["security_groups"]
        if len(groups) != 1:
            raise LabError(f"security group {name_or_id!r} of project {project_id}: "
                           f"{'not found' if not groups else 'name is ambiguous'}")
        return groups[0]

    def create_port(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._ok(self.http.post("/v2.0/ports", json={"port": body}))["port"]

    def port(self, port_id: str) -> dict[str, Any] | None:
        resp = self.http.get(f"/v2.0/ports/{port_id}")
        return None if resp.status_code == 404 else self._ok(resp)["port"]

    def delete_port(self, port_id: str) -> None:
        resp = self.http.delete(f"/v2.0/ports/{port_id}")
        if resp.status_code not in (204, 404):
            self._ok(resp)

    def agents(self) -> list[dict[str, Any]]:
        return self._ok(self.http.get("/v2.0/agents"))["agents"]

    def delete_agent(self, agent_id: str) -> None:
        resp = self.http.delete(f"/v2.0/agents/{agent_id}")
        if resp.status_code not in (204, 404):
            self._ok(resp)

    def post(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        member = collection[:-1].replace("-", "_")
        return self._ok(self.http.post(f"/v2.0/{collection}", json={member: body}))[member]


def ensure_external_network(state: LabState, api: Api) -> dict[str, Any]:
    """The Neutron side of the lab's external wire: a flat external network "public" with its subnet."""
    if state.external_network_id:
        resp = api.http.get(f"/v2.0/networks/{state.external_network_id}")
        if resp.status_code == 200:
            return resp.json()["network"]
    found = api._ok(api.http.get("/v2.0/networks", params={"name": "public", "router:external": "true"}))
    if found["networks"]:
        net = found["networks"][0]
    else:
        net = api.post("networks", {"name": "public", "router:external": True, "shared": False,
                                    "provider:network_type": "flat",
                                    "provider:physical_network": state.external_physnet})
        api.post("subnets", {"network_id": net["id"], "name": "public-subnet", "ip_version": 4,
                             "cidr": EXTERNAL_CIDR, "gateway_ip": EXTERNAL_GATEWAY, "enable_dhcp": False,
                             "allocation_pools": [{"start": EXTERNAL_POOL[0], "end": EXTERNAL_POOL[1]}]})
    state.external_network_id = net["id"]
    return net


def boot(state: LabState, api: Api, state_dir: Path, network: str, host: str, name: str,
         dhcp_timeout: float = 20.0, security_groups: list[str] | None = None, fixed_ip: str | None = None,
         port_security: bool = True) -> LabInstance:
    """Plug an instance into the network on the host. The port gets the security groups (names or ids; none
    given: the project's default), the fixed address and port security as asked, as `openstack port create`
    would give them."""
    if name in state.instances:
        raise LabError(f"instance {name} already exists")
    if host not in state.hosts:
        raise LabError(f"unknown host {host} (hosts: {', '.join(state.hosts)})")
    if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", name):
        raise LabError(f"instance name {name!r}: use letters, digits and '-'")
    net = api.network(network)
    body: dict[str, Any] = {"network_id": net["id"], "name": name, "device_owner": "compute:nova",
                            "device_id": name, "binding:host_id": host, "project_id": net["project_id"]}
    if security_groups:
        body["security_groups"] = [api.security_group(g, net["project_id"])["id"] for g in security_groups]
    if fixed_ip:
        body["fixed_ips"] = [{"ip_address": fixed_ip}]
    if not port_security:
        body["port_security_enabled"] = False
    port = api.create_port(body)
    if port.get("binding:vif_type") in ("binding_failed", "unbound"):
        api.delete_port(port["id"])
        reason = (port.get("binding:vif_details") or {}).get("error", "no agent could bind it")
        raise LabError(f"port binding failed on host {host}: {reason}")
    inst = LabInstance(name=name, netns=f"{state.prefix}-vm-{name}", host=host, port_id=port["id"],
                       network_id=net["id"], mac=port["mac_address"])
    state.instances[name] = inst
    netns.create(inst.netns)
    veth.plug(state.hosts[host].netns, naming.tap(port["id"]), inst.netns, "eth0", port["mac_address"], net["mtu"])
    v4 = [f["ip_address"] for f in port["fixed_ips"] if ":" not in f["ip_address"]]
    if v4:
        inst.ip = dhcp(inst, state_dir, dhcp_timeout)
        if inst.ip != v4[0]:
            raise LabError(f"{name} got {inst.ip} from DHCP, but its port has {v4[0]}")
    return inst


def dhcp(inst: LabInstance, state_dir: Path, timeout: float) -> str | None:
    script = state_dir / UDHCPC_SCRIPT_NAME
    if not script.exists() or script.read_text() != UDHCPC_SCRIPT:
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(UDHCPC_SCRIPT)
        os.chmod(script, 0o755)
    tries = max(1, int(timeout))
    proc = subprocess.run(["ip", "netns", "exec", inst.netns, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t",
                           str(tries), "-T", "1", "-A", "1", "-s", str(script), "-O", "mtu", "-O", "staticroutes"],
                          capture_output=True, text=True, timeout=timeout * 3 + 10, check=False)
    if proc.returncode != 0:
        raise LabError(f"{inst.name}: no DHCP lease ({(proc.stderr or proc.stdout).strip().splitlines()[-1:]})")
    return address(inst.netns)


def address(ns: str) -> str | None:
    out = netns.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"], check=False).stdout
    found = re.search(r"inet (\S+)/", out)
    return found.group(1) if found else None


def ping(state: LabState, src: str, dst: str, count: int = 3,
         deadline: float | None = None) -> subprocess.CompletedProcess[str]:
    """src: an instance or "external" (the lab's internet); dst: an instance, "external" or an address.
    With a deadline, ping goes on until `count` replies came or the deadline passed (ping -w)."""
    source = namespace_of(state, src)
    if dst == "external":
        target: str | None = EXTERNAL_GATEWAY
    else:
        target = state.instances[dst].ip if dst in state.instances else dst
    if not target:
        raise LabError(f"{dst} has no address")
    wait = ["-w", str(max(1, round(deadline)))] if deadline else []
    return subprocess.run(["ip", "netns", "exec", source, "ping", "-c", str(count), "-i", "0.2", "-W", "1", *wait,
                           target], capture_output=True, text=True, timeout=count + 10 + (deadline or 0), check=False)


def remove(state: LabState, api: Api, name: str) -> None:
    inst = _instance(state, name)
    api.delete_port(inst.port_id)
    netns.delete(inst.netns)
    del state.instances[name]


def wait_port_status(api: Api, port_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        port = api.port(port_id)
        if port is not None and port["status"] == status:
            return port
        if time.monotonic() > deadline:
            raise LabError(f"port {port_id} is {port and port['status']}, not {status}, after {timeout:.0f}s")
        time.sleep(0.1)


def namespace_of(state: LabState, name: str) -> str:
    """An instance's namespace, the external one ("external") or a host's."""
    if name not in state.instances and name in state.hosts:
        return state.hosts[name].netns
    if name == "external":
        if not state.external:
            raise LabError("this lab has no external namespace (run `fermion lab up` again)")
        return state.external
    return _instance(state, name).netns


def _instance(state: LabState, name: str) -> LabInstance:
    if name not in state.instances:
        raise LabError(f"unknown instance {name} (instances: {', '.join(state.instances) or 'none'})")
    return state.instances[name]
