"""The DHCP agent driver: per served network a qdhcp namespace holding the DHCP port and a dnsmasq."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fermion.agent.runtime import SyncResult
from fermion.dataplane import DataplaneError, naming, netns, veth
from fermion.dataplane import dnsmasq as dm
from fermion.rpc.contracts import DhcpNetwork, DhcpView, Hint, decode

LOG = logging.getLogger(__name__)
AGENT_TYPE = "DHCP agent"


class DhcpAgent:
    agent_type = AGENT_TYPE
    binary = "fermion-dhcp-agent"
    topic = "dhcp_agent"
    view_method = "get_dhcp_view"

    def __init__(self, host: str, state_dir: Path, netns_name: str | None = None) -> None:
        self.host = host
        self.netns = netns_name
        self.state_dir = state_dir / "dhcp" / host
        self.prefix = naming.dhcp_namespace("", netns_name)
        self.networks: set[str] = set()
        self._lock = threading.Lock()

    def configurations(self) -> dict[str, Any]:
        return {"networks": len(self.networks), "dhcp_driver": "dnsmasq", "netns": self.netns}

    def relevant(self, hint: Hint) -> Iterable[str]:
        if hint.network_id and (hint.network_id in self.networks or hint.kind in ("network", "subnet")):
            return [hint.network_id]
        return []

    def start(self, wake: Callable[[Iterable[str]], None]) -> None:
        pass

    def stop(self) -> None:
        pass

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        desired = decode(DhcpView, view)
        failed = False
        with self._lock:
            wanted = {n.id for n in desired.networks}
            for net in desired.networks:
                try:
                    self._ensure(net)
                except DataplaneError as err:
                    LOG.warning("DHCP for network %s on host %s: %s", net.id, self.host, err)
                    failed = True
            present = {ns[len(self.prefix):] for ns in netns.names(self.prefix)}
            candidates = present if scope is None else present & scope
            for network_id in sorted(candidates - wanted):
                self._remove(network_id)
            self.networks = wanted if scope is None else (self.networks - scope) | wanted
        return SyncResult(failed=failed)

    def _ensure(self, net: DhcpNetwork) -> None:
        ns = naming.dhcp_namespace(net.id, self.netns)
        netns.create(ns)
        dev = naming.dhcp_device(net.port_id)
        for stale in veth.other_devices(ns, dev):
            veth.delete(ns, stale)
        veth.plug(self.netns, naming.tap(net.port_id), ns, dev, net.port_mac, net.mtu, net.port_ips)
        cfg = dm.Config(
            network_id=net.id, namespace=ns, interface=dev, mtu=net.mtu,
            server_ips=tuple(ip.split("/")[0] for ip in net.port_ips),
            subnets=tuple(dm.Subnet(id=s.id, cidr=s.cidr, ip_version=s.ip_version, gateway_ip=s.gateway_ip,
                                    dns_nameservers=tuple(s.dns_nameservers),
                                    host_routes=tuple((r["destination"], r["nexthop"]) for r in s.host_routes),
                                    ipv6_address_mode=s.ipv6_address_mode) for s in net.subnets),
            hosts=tuple(dm.Host(mac=h.mac, ip=h.ip, subnet_id=h.subnet_id, port_id=h.port_id, hostname=h.hostname,
                                fqdn=h.fqdn, options=tuple(dm.Option(o.name, o.value, o.ip_version)
                                                           for o in h.options))
                        for h in net.hosts),
            domain=net.dns_domain)
        dnsmasq = dm.Dnsmasq(self.state_dir / net.id)
        action = dnsmasq.ensure(cfg)
        if action != "unchanged":
            LOG.info("dnsmasq for network %s on host %s: %s", net.id, self.host, action)
        released = dnsmasq.release_stale(cfg)
        if released:
            LOG.info("released the DHCP leases of %s on network %s", ", ".join(released), net.id)

    def _remove(self, network_id: str) -> None:
        workdir = self.state_dir / network_id
        dm.Dnsmasq(workdir).stop()
        netns.delete(naming.dhcp_namespace(network_id, self.netns))
        shutil.rmtree(workdir, ignore_errors=True)
        LOG.info("removed DHCP for network %s on host %s", network_id, self.host)
