"""dnsmasq for one network, run as Neutron's DHCP agent runs it: static leases from a hosts file, options
from an opts file, reloaded with SIGHUP when only those change, restarted when its command line must."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import netaddr

from fermion.dataplane import DataplaneError, netns

LOG = logging.getLogger(__name__)
LEASE_SECONDS = 86400
DOMAIN = "openstacklocal."
CLIENT_ID = "client-id"  # an extra option that names the client instead of being sent (RFC 4776)


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[tuple[str, str], ...]  # (destination, nexthop)
    ipv6_address_mode: str | None = None


@dataclass(frozen=True)
class Option:
    name: str  # a dnsmasq option name or number, optionally after "tag:<tag>,"
    value: str
    ip_version: int = 4


@dataclass(frozen=True)
class Host:
    mac: str
    ip: str
    subnet_id: str
    port_id: str = ""
    hostname: str = ""  # from the port's dns_assignment; empty: host-<address> in the domain
    fqdn: str = ""
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Config:
    network_id: str
    namespace: str
    interface: str
    mtu: int
    server_ips: tuple[str, ...]  # the DHCP port's addresses (DNS server for subnets without nameservers)
    subnets: tuple[Subnet, ...]
    hosts: tuple[Host, ...]
    domain: str = DOMAIN  # with or without its trailing dot; empty: none


def _names(h: Host, domain: str) -> tuple[str, str]:
    """(hostname, fqdn) of a host entry, as Neutron's DHCP agent names an address without a dns_assignment."""
    if h.hostname:
        return h.hostname, h.fqdn or h.hostname
    name = "host-" + h.ip.replace(".", "-").replace(":", "-")
    return name, f"{name}.{domain}" if domain else name


def _option(tag: str, opt: Option) -> str:
    """An opts-file line for a port's extra option: tag:<port tag>[,tag:<extra>],option[6]:<name>[,<value>]."""
    extra, _, name = opt.name.rpartition(",") if opt.name.startswith("tag:") else ("", "", opt.name)
    if opt.ip_version == 6:
        name = f"option6:{name}"
    elif not name.isdigit():
        name = f"option:{name}"
    parts = [f"tag:{tag}", *([extra] if extra else []), name, *([opt.value] if opt.value else [])]
    return ",".join(parts)


def _port_tag(h: Host) -> str:
    return f"port-{h.port_id}"


def render(cfg: Config) -> dict[str, str]:
    """The hosts, addn_hosts and opts files."""
    domain = cfg.domain if not cfg.domain or cfg.domain.endswith(".") else cfg.domain + "."
    hosts: list[str] = []
    addn: list[str] = []
    opts: list[str] = []
    port_opts: list[str] = []
    tagged: set[tuple[str, int]] = set()
    for h in cfg.hosts:
        hostname, fqdn = _names(h, domain)
        ip = f"[{h.ip}]" if ":" in h.ip else h.ip
        version = 6 if ":" in h.ip else 4
        sent = [o for o in h.options if o.name != CLIENT_ID and o.ip_version == version]
        # a port with options of its own gets a tag they are given for (Neutron's dnsmasq driver does the same)
        tag = f"set:{_port_tag(h)}," if sent and h.port_id else ""
        hosts.append(f"{h.mac},{tag}{fqdn},{ip}")
        addn.append(f"{h.ip}\t{fqdn.rstrip('.')} {hostname.rstrip('.')}")
        if tag and (_port_tag(h), version) not in tagged:
            tagged.add((_port_tag(h), version))
            port_opts.extend(_option(_port_tag(h), o) for o in sent)
    for s in cfg.subnets:
        tag = f"tag:subnet-{s.id}"
        if s.ip_version == 4:
            own = [ip for ip in cfg.server_ips if ":" not in ip]
            dns = list(s.dns_nameservers) or own[:1]
            if dns:
                opts.append(f"{tag},option:dns-server,{','.join(dns)}")
            if s.gateway_ip:
                opts.append(f"{tag},option:router,{s.gateway_ip}")
            else:
                opts.append(f"{tag},option:router")
            if s.host_routes:
                routes = [f"{dst},{hop}" for dst, hop in s.host_routes]
                if s.gateway_ip:
                    routes.append(f"0.0.0.0/0,{s.gateway_ip}")
                opts.append(f"{tag},option:classless-static-route,{','.join(routes)}")
        else:
            dns = [f"[{d}]" for d in s.dns_nameservers]
            if dns:
                opts.append(f"{tag},option6:dns-server,{','.join(dns)}")
    opts += port_opts  # after the subnets' options, as Neutron writes them
    return {"host": "\n".join(hosts) + "\n", "addn_hosts": "\n".join(addn) + "\n", "opts": "\n".join(opts) + "\n"}


def _domain_arg(cfg: Config) -> list[str]:
    domain = cfg.domain.rstrip(".")
    return [f"--domain={domain}"] if domain else []


def command(cfg: Config, workdir: Path) -> list[str]:
    argv = ["dnsmasq", "--no-hosts", "--no-resolv", "--user=root", "--group=root", f"--pid-file={workdir / 'pid'}",
            f"--dhcp-hostsfile={workdir / 'host'}", f"--addn-hosts={workdir / 'addn_hosts'}",
            f"--dhcp-optsfile={workdir / 'opts'}", f"--dhcp-leasefile={workdir / 'leases'}",
            "--dhcp-match=set:ipxe,175", "--local-service", "--bind-dynamic", f"--interface={cfg.interface}",
            "--except-interface=lo", "--conf-file=/dev/null", *_domain_arg(cfg),
            f"--dhcp-option-force=option:mtu,{cfg.mtu}", f"--dhcp-lease-max={max(256, len(cfg.hosts) * 2)}",
            f"--log-facility={workdir / 'dnsmasq.log'}", "--log-dhcp"]
    for s in cfg.subnets:
        net = netaddr.IPNetwork(s.cidr)
        if s.ip_version == 4:
            argv.append(f"--dhcp-range=set:subnet-{s.id},{net.network},static,{net.netmask},{LEASE_SECONDS}s")
        elif s.ipv6_address_mode == "dhcpv6-stateless":
            argv.append(f"--dhcp-range=set:subnet-{s.id},{net.network},ra-stateless,{net.prefixlen},{LEASE_SECONDS}s")
        elif s.ipv6_address_mode != "slaac":
            argv.append(f"--dhcp-range=set:subnet-{s.id},{net.network},static,{net.prefixlen},{LEASE_SECONDS}s")
    return argv


class Dnsmasq:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def pid(self) -> int | None:
        try:
            pid = int((self.workdir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(self.workdir).encode() not in f.read():
                    return None
        except OSError:
            return None
        return pid

    def ensure(self, cfg: Config) -> str:
        """Write the files and make dnsmasq serve them. Returns what it did: started, restarted, reloaded or
        unchanged."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        files_changed = tagged = False
        for name, text in render(cfg).items():
            path = self.workdir / name
            old = path.read_text() if path.exists() else None
            if old != text:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, path)
                files_changed = True
            # dnsmasq 2.90 (Debian 12) segfaults when a SIGHUP makes it re-read a hosts file with set: tags
            # (measured): while ports have options of their own, a change restarts it instead
            tagged = tagged or (name == "host" and ",set:" in (old or "") + text)
        argv = ["ip", "netns", "exec", cfg.namespace, *command(cfg, self.workdir)]
        digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()
        stamp = self.workdir / "cmdline.sha256"
        pid = self.pid()
        if pid is not None and stamp.exists() and stamp.read_text() == digest and not tagged:
            if files_changed:
                os.kill(pid, signal.SIGHUP)
                return "reloaded"
            return "unchanged"
        action = "started"
        if pid is not None:
            self.stop()
            action = "restarted"
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise DataplaneError(f"dnsmasq for network {cfg.network_id} failed to start: {proc.stderr.strip()}")
        stamp.write_text(digest)
        return action

    def leases(self) -> list[tuple[str, str]]:
        """(mac, address) of dnsmasq's IPv4 leases (lease file lines: expiry mac address name client-id)."""
        try:
            text = (self.workdir / "leases").read_text()
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] != "duid" and ":" not in parts[2]:
                found.append((parts[1].lower(), parts[2]))
        return found

    def release_stale(self, cfg: Config) -> list[str]:
        """Release the leases no host entry stands behind any more (a deleted port, a changed address or MAC),
        with dnsmasq's dhcp_release as Neutron's DHCP agent does: the lease leaves the lease file now, not when
        it expires. Returns the released addresses."""
        wanted = {(h.mac.lower(), h.ip) for h in cfg.hosts}
        stale = [(mac, ip) for mac, ip in self.leases() if (mac, ip) not in wanted]
        if not stale:
            return []
        if shutil.which("dhcp_release") is None:
            LOG.warning("dhcp_release (Debian package dnsmasq-utils) is missing: %d stale leases of network %s "
                        "stay until they expire", len(stale), cfg.network_id)
            return []
        for mac, ip in stale:
            netns.run(["ip", "netns", "exec", cfg.namespace, "dhcp_release", cfg.interface, ip, mac], check=False)
        return [ip for _, ip in stale]

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            netns.terminate([pid], timeout=1.0)
        (self.workdir / "pid").unlink(missing_ok=True)
