"""`fermion lab`: emulated hosts and instances on this machine, for trying Fermion's data plane."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from fermion.config import settings as cfg
from fermion.dataplane import netns
from fermion.lab import instances, topology
from fermion.lab.instances import Api, LabError
from fermion.lab.state import LabState, state_path


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("fermion lab: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    state_dir = cfg.state_dir()
    path = state_path(state_dir)
    state = LabState.load(path)
    try:
        if args.verb == "up":
            return _up(args, state, state_dir)
        if state is None:
            print("fermion lab: no lab here; run `fermion lab up` first", file=sys.stderr)
            return 1
        api = Api(state.endpoint)
        if args.verb == "boot":
            try:
                inst = instances.boot(state, api, state_dir, args.network, args.host, args.name)
            finally:
                state.save(path)
            print(f"{inst.name}: host {inst.host}, port {inst.port_id}, mac {inst.mac}, ip {inst.ip} (DHCP)")
            return 0
        if args.verb == "ping":
            proc = instances.ping(state, args.src, args.dst, args.count)
            print(proc.stdout.strip() or proc.stderr.strip())
            return proc.returncode
        if args.verb == "ls":
            _ls(state, api)
            return 0
        if args.verb == "rm":
            instances.remove(state, api, args.name)
            state.save(path)
            print(f"removed {args.name}")
            return 0
        if args.verb == "down":
            return _down(state, path)
    except LabError as err:
        print(f"fermion lab: {err}", file=sys.stderr)
        return 1
    return 2


def _up(args: argparse.Namespace, state: LabState | None, state_dir: Path) -> int:
    from fermion.runtime.lab import spawn_agents

    mode = "distributed" if args.distributed else "embedded"
    if state is not None and state.mode != mode:
        print(f"fermion lab: a {state.mode} lab is up; run `fermion lab down` first", file=sys.stderr)
        return 1
    state = state or LabState(prefix=args.prefix, mode=mode, endpoint=args.endpoint)
    hosts = [h for h in args.hosts.split(",") if h]
    api = Api(state.endpoint)
    try:
        api.agents()
    except Exception as err:  # noqa: BLE001 - any failure here means: no server to talk to
        print(f"fermion lab: no Fermion server at {state.endpoint} ({err}); start it first "
              "(scripts/run, or `fermion all-in-one`)", file=sys.stderr)
        return 1
    topology.build(state, hosts, args.dhcp_host if args.dhcp_host in hosts else hosts[-1])
    topology.build_external(state)
    if mode == "distributed":
        settings = cfg.load(args.config)
        if not settings.rpc.transport_url:
            print("fermion lab: --distributed needs [rpc] transport_url (or FERMION_TRANSPORT_URL)", file=sys.stderr)
            return 1
        env = {"FERMION_TRANSPORT_URL": settings.rpc.transport_url}
        for host in state.hosts.values():
            if not host.pids or not all(netns.alive(p) for p in host.pids):
                host.pids = spawn_agents(state, host, state_dir / "lab-logs", env)
    state.save(state_path(state_dir))
    wanted = {(h.name, "Linux bridge agent") for h in state.hosts.values()} | {
        (h.name, kind) for h in state.hosts.values() if h.dhcp for kind in ("DHCP agent", "L3 agent")}
    deadline = time.monotonic() + 30
    while True:
        alive = {(a["host"], a["agent_type"]) for a in api.agents() if a["alive"]}
        if wanted <= alive:
            break
        if time.monotonic() > deadline:
            missing = ", ".join(f"{t} on {h}" for h, t in sorted(wanted - alive))
            print(f"fermion lab: agents did not report in 30 s: {missing}. In embedded mode the server must be "
                  "`fermion all-in-one` with the same state directory.", file=sys.stderr)
            return 1
        time.sleep(0.2)
    ext = instances.ensure_external_network(state, api)
    state.save(state_path(state_dir))
    print(f"lab up ({mode}): hosts {', '.join(state.hosts)}; agents alive; external network {ext['name']} "
          f"({topology.EXTERNAL_CIDR}, the internet is namespace {state.external} at {topology.EXTERNAL_GATEWAY}). "
          "Next:")
    print("  openstack network create net1 && openstack subnet create --network net1 --subnet-range 10.1.0.0/24 s1")
    print("  fermion lab boot --network net1 --host compute1 vm1")
    print("  fermion lab boot --network net1 --host compute2 vm2")
    print("  fermion lab ping vm1 vm2")
    print("  openstack router create r1 && openstack router set --external-gateway public r1 && "
          "openstack router add subnet r1 s1")
    print("  fermion lab ping vm1 external")
    return 0


def _ls(state: LabState, api: Api) -> None:
    agents = {(a["host"], a["agent_type"]): a for a in api.agents()}
    print(f"lab ({state.mode}), namespaces {state.prefix}-*")
    if state.external:
        print(f"  external     {state.external} at {topology.EXTERNAL_GATEWAY} (network public, "
              f"{topology.EXTERNAL_CIDR})")
    for host in state.hosts.values():
        kinds = [t for (h, t) in agents if h == host.name]
        status = ", ".join(f"{t}: {'alive' if agents[(host.name, t)]['alive'] else 'DEAD'}" for t in sorted(kinds))
        print(f"  host {host.name:<12} underlay {host.underlay_ip:<13} {status or 'no agents'}")
    for inst in state.instances.values():
        port = api.port(inst.port_id)
        status = port["status"] if port else "port deleted"
        print(f"  instance {inst.name:<10} on {inst.host:<10} ip {inst.ip or '-':<15} mac {inst.mac} port {status}")


def _down(state: LabState, path: Path) -> int:
    for host in state.hosts.values():
        for pid in host.pids:
            if netns.alive(pid):
                os.kill(pid, signal.SIGTERM)
    api = Api(state.endpoint)
    for inst in list(state.instances.values()):
        try:
            api.delete_port(inst.port_id)
        except Exception:  # noqa: BLE001 - the server may be gone; the namespaces go anyway
            pass
    path.unlink(missing_ok=True)  # embedded: the server's supervisor stops the agents
    time.sleep(1.5 if state.mode == "embedded" else 0)
    gone = topology.destroy(state)
    print(f"lab down: removed {len(gone)} namespaces")
    return 0

