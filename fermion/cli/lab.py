"""`fermion lab`: emulated hosts and instances on this machine, for trying Fermion's data plane."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from fermion.config import settings as cfg
from fermion.dataplane import ovs
from fermion.lab import instances, topology
from fermion.lab.instances import Api, LabError
from fermion.lab.state import AgentProcess, LabHost, LabState, log_dir, state_path

SERVER_WAIT = 10.0  # seconds `lab up` waits for the server to answer (it may just have been started)


def parse_zones(value: str, hosts: list[str], option: str = "--zones", label: str = "ZONE") -> dict[str, str]:
    """--zones compute1=az1,network1=az2 -> {"compute1": "az1", "network1": "az2"} (--physnets alike)."""
    out: dict[str, str] = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        host, sep, zone = item.partition("=")
        if not sep or not zone or host not in hosts:
            raise LabError(f"{option}: {item!r} is not HOST={label} with HOST one of --hosts")
        out[host] = zone
    return out


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
                inst = instances.boot(state, api, state_dir, args.network, args.host, args.name,
                                      security_groups=args.security_group, fixed_ip=args.fixed_ip,
                                      port_security=not args.no_port_security)
            finally:
                state.save(path)
            print(f"{inst.name}: host {inst.host}, port {inst.port_id}, mac {inst.mac}, ip {inst.ip} (DHCP)")
            return 0
        if args.verb == "ping":
            proc = instances.ping(state, args.src, args.dst, args.count, args.deadline or None)
            print(proc.stdout.strip() or proc.stderr.strip())
            return proc.returncode
        if args.verb == "exec":
            return _exec(state, args.name, args.argv)
        if args.verb == "ls":
            _ls(state, api)
            return 0
        if args.verb == "rm":
            instances.remove(state, api, args.name)
            state.save(path)
            print(f"removed {args.name}")
            return 0
        if args.verb == "restart-agent":
            return _restart_agent(args, state, state_dir, api)
        if args.verb == "fail":
            return _fail(args, state, state_dir)
        if args.verb == "heal":
            return _heal(args, state, state_dir, api)
        if args.verb == "down":
            _teardown(state, state_dir, delete_ports=True)
            return 0
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
    fresh = state is None
    state = state or LabState(prefix=args.prefix, mode=mode, endpoint=args.endpoint)
    api = Api(state.endpoint)
    problem = _server_problem(api)
    if problem:
        print(f"fermion lab: no Fermion server at {state.endpoint} ({problem}); start it first "
              f"({'`fermion serve --config FILE`' if args.distributed else 'scripts/run, or `fermion all-in-one`'})",
              file=sys.stderr)
        return 1
    settings = None
    if mode == "distributed":
        config = args.config or os.environ.get("FERMION_CONFIG") or ""
        settings = cfg.load(config or None)
        if not settings.rpc.transport_url:
            print("fermion lab: --distributed needs [rpc] transport_url in the --config file (or "
                  "FERMION_TRANSPORT_URL): the agents talk to the server over RabbitMQ", file=sys.stderr)
            return 1
        state.config = str(Path(config).resolve()) if config else ""
        env = {k: v for k, v in os.environ.items() if k.startswith("FERMION_") and k != "FERMION_CONFIG"}
        state.agent_env = {**env, "FERMION_STATE_DIR": str(state_dir)}
    started: list[AgentProcess] = []
    switches = host_switches(args.hosts, args.agent)
    hosts, network_hosts = host_names(",".join(switches), args.dhcp_host, args.network_hosts)
    try:
        try:
            topology.build(state, hosts, network_hosts, parse_zones(args.zones, hosts),
                           parse_zones(args.physnets, hosts, "--physnets", "PHYSNET"), dvr=args.dvr,
                           switches={h: switches.get(h, args.agent) for h in hosts}, state_dir=state_dir)
        except ValueError as err:
            raise LabError(str(err)) from None
        topology.build_external(state)
        if mode == "distributed":
            for host in state.hosts.values():
                if not host.failed:
                    started += spawn_agents(state, host, log_dir(state_dir))
        state.save(state_path(state_dir))
        _wait_agents(state, api, args.wait, state_dir, settings)
        ext = instances.ensure_external_network(state, api)
        state.save(state_path(state_dir))
    except BaseException as err:
        _undo_up(state, state_dir, started, fresh)
        if isinstance(err, KeyboardInterrupt):
            return 130
        raise
    print(f"lab up ({mode}): hosts {', '.join(state.hosts)}; agents alive; external network {ext['name']} "
          f"({topology.EXTERNAL_CIDR}, the internet is namespace {state.external} at {topology.EXTERNAL_GATEWAY}). "
          "Next:")
    print("  openstack network create net1 && openstack subnet create --network net1 --subnet-range 10.1.0.0/24 s1")
    names = list(state.hosts)
    print(f"  fermion lab boot --network net1 --host {names[0]} vm1")
    print(f"  fermion lab boot --network net1 --host {names[1 % len(names)]} vm2")
    print("  fermion lab ping vm1 vm2")
    print("  openstack router create r1 && openstack router set --external-gateway public r1 && "
          "openstack router add subnet r1 s1")
    print("  fermion lab ping vm1 external")
    l3_hosts = [h.name for h in state.hosts.values() if h.dhcp]
    if len(l3_hosts) > 1:
        print(f"  openstack router create --ha r2   # keepalived on {', '.join(l3_hosts)}; then "
              f"`fermion lab fail {l3_hosts[0]}`, `fermion lab heal {l3_hosts[0]}`")
    if any(h.l3_mode == "dvr" for h in state.hosts.values()):
        print("  openstack router create --distributed r3   # routed on each compute host, SNAT on "
              f"{', '.join(l3_hosts)}")
    return 0


SWITCHES = {"linuxbridge": "linuxbridge", "lb": "linuxbridge", "ovs": "ovs", "openvswitch": "ovs"}


def host_switches(hosts_arg: str, default: str) -> dict[str, str]:
    """--hosts compute1:ovs,compute2:linuxbridge,network1 -> each host's L2 agent (default: --agent's)."""
    out: dict[str, str] = {}
    for item in filter(None, (v.strip() for v in hosts_arg.split(","))):
        name, _, kind = item.partition(":")
        if kind and kind not in SWITCHES:
            raise LabError(f"--hosts: {item!r}: the agent after ':' is linuxbridge or ovs")
        out[name] = SWITCHES[kind or default]
    return out


def host_names(hosts_arg: str, dhcp_host: str | None, network_hosts: int | None) -> tuple[list[str], list[str]]:
    """The lab's hosts and its network nodes (DHCP and L3 agents) from --hosts, --dhcp-host and
    --network-hosts N (network1..N, added to --hosts when missing)."""
    hosts = [h for h in hosts_arg.split(",") if h]
    if not hosts and not network_hosts:
        raise LabError("--hosts: name at least one host")
    if network_hosts is None:
        return hosts, [h for h in (dhcp_host or "network1").split(",") if h in hosts] or hosts[-1:]
    if dhcp_host is not None:
        raise LabError("give --network-hosts or --dhcp-host, not both")
    if not 1 <= network_hosts <= 9:
        raise LabError("--network-hosts: from 1 to 9")
    names = [f"network{i}" for i in range(1, network_hosts + 1)]
    return hosts + [n for n in names if n not in hosts], names


def _server_problem(api: Api) -> str | None:
    """None when the server answers; else why not (after waiting a little for one that is starting)."""
    deadline = time.monotonic() + SERVER_WAIT
    while True:
        try:
            api.agents()
            return None
        except httpx.TransportError as err:
            if time.monotonic() > deadline:
                return str(err) or type(err).__name__
        except Exception as err:  # noqa: BLE001 - anything else: not a Fermion server we can use
            return str(err)
        time.sleep(0.2)


def _agent_type(kind: str) -> str:
    from fermion.runtime.lab import AGENT_TYPES

    return AGENT_TYPES[kind]


def _wait_agents(state: LabState, api: Api, seconds: float, state_dir: Path, settings: cfg.Settings | None,
                 only: list[tuple[LabHost, str]] | None = None,
                 started_before: dict[tuple[str, str], str] | None = None) -> None:
    """Every agent (or only these (host, kind)) alive and, with started_before, started since: else LabError
    saying why."""
    from fermion.runtime.lab import running

    if only is None:
        only = [(h, k) for h in state.hosts.values() if not h.failed for k in h.kinds()]
    wanted = {(h.name, _agent_type(k)) for h, k in only}
    before = started_before or {}
    deadline = time.monotonic() + seconds
    while True:
        alive = {(a["host"], a["agent_type"]) for a in api.agents()
                 if a["alive"] and before.get((a["host"], a["agent_type"])) != a["started_at"]}
        if wanted <= alive:
            return
        for host, kind in only:
            for proc in host.agents:
                if proc.kind == kind and not running(proc, host):
                    log = log_dir(state_dir) / f"{kind}-{host.name}.log"
                    raise LabError(f"the {kind} agent of host {host.name} exited: {_last_line(log)} (log: {log})")
        if time.monotonic() > deadline:
            missing = ", ".join(f"{t} on {h}" for h, t in sorted(wanted - alive))
            raise LabError(f"agents did not report in {seconds:.0f} s: {missing}. "
                           + _mode_hint(state, state_dir, settings))
        time.sleep(0.2)


def _mode_hint(state: LabState, state_dir: Path, settings: cfg.Settings | None) -> str:
    if state.mode == "embedded" or settings is None:
        return (f"In embedded mode the server must be `fermion all-in-one` with the same state directory "
                f"({state_dir}).")
    transport = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", settings.rpc.transport_url)
    return (f"In distributed mode the server at {state.endpoint} and the agents must use the same [rpc] "
            f"transport_url and prefix; the agents use {transport}, prefix {settings.rpc.prefix!r} "
            f"(from {state.config or 'the environment'}). Agent logs: {log_dir(state_dir)}")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def _undo_up(state: LabState, state_dir: Path, started: list[AgentProcess], fresh: bool) -> None:
    """A failed or interrupted `lab up` leaves nothing it started running: a new lab is removed entirely."""
    from fermion.runtime.lab import stop_agents

    if fresh:
        _teardown(state, state_dir, delete_ports=False)
        print("fermion lab: `lab up` failed; removed what it made", file=sys.stderr)
        return
    for host in state.hosts.values():
        mine = [a for a in host.agents if a in started]
        stop_agents(host, mine)
        host.agents = [a for a in host.agents if a not in started]
    state.save(state_path(state_dir))
    if started:
        print(f"fermion lab: `lab up` failed; stopped the {len(started)} agents it started", file=sys.stderr)


def _teardown(state: LabState, state_dir: Path, delete_ports: bool) -> None:
    """Stop the lab's agents, delete its instances' ports, namespaces and DHCP state, forget the lab."""
    from fermion.runtime.lab import restart_dir, stop_agents

    for host in state.hosts.values():
        stop_agents(host, host.agents)
    if delete_ports:
        api = Api(state.endpoint)
        for inst in list(state.instances.values()):
            try:
                api.delete_port(inst.port_id)
            except Exception:  # noqa: BLE001 - the server may be gone; the namespaces go anyway
                pass
    state_path(state_dir).unlink(missing_ok=True)  # embedded: the server's supervisor stops the agents
    if state.mode == "embedded":
        _wait_supervisor(state, state_dir)
    gone = topology.destroy(state, state_dir)
    if delete_ports:
        _forget_agents(state)
    for name in state.hosts:
        shutil.rmtree(state_dir / "dhcp" / name, ignore_errors=True)
        shutil.rmtree(ovs.rundir(state_dir, name), ignore_errors=True)
    for leftover in (state_dir / "dhcp", restart_dir(state_dir)):
        if leftover.is_dir() and not any(leftover.iterdir()):
            leftover.rmdir()
    (state_dir / instances.UDHCPC_SCRIPT_NAME).unlink(missing_ok=True)
    if delete_ports:
        print(f"lab down: removed {len(gone)} namespaces")


def _forget_agents(state: LabState) -> None:
    """The lab's hosts are gone, and so are their agents: deleted from the server (as an operator removes a
    decommissioned host's), so that a new lab's networks and routers are not scheduled onto agents that only
    look alive until agent_down_time passes, and the new agents take over what the old ones hosted."""
    try:
        api = Api(state.endpoint)
        for agent in api.agents():
            if agent["host"] in state.hosts:
                api.delete_agent(agent["id"])
    except Exception as err:  # noqa: BLE001 - the server may be gone; nothing else to clean then
        print(f"fermion lab: could not delete the lab's agents from the server: {err}", file=sys.stderr)


def _wait_supervisor(state: LabState, state_dir: Path, timeout: float = 15.0) -> None:
    """Embedded mode: until the server's supervisor has stopped the agents of the lab's hosts (they would
    otherwise rebuild what is being removed)."""
    from fermion.runtime.lab import wait_unsupervised

    wait_unsupervised(state_dir, set(state.hosts), timeout)


def _exec(state: LabState, name: str, command: list[str]) -> int:
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise LabError("exec: give the command after --, e.g. `fermion lab exec vm1 -- ip addr`")
    ns = instances.namespace_of(state, name)
    sys.stdout.flush()
    os.execvp("ip", ["ip", "netns", "exec", ns, *command])
    return 127  # not reached


def _restart_agent(args: argparse.Namespace, state: LabState, state_dir: Path, api: Api) -> int:
    from fermion.lab.failure import host_of
    from fermion.runtime.lab import restart_dir, spawn_agent, stop_agents

    host = host_of(state, args.host)
    if host.failed:
        raise LabError(f"host {host.name} has failed; `fermion lab heal {host.name}` starts its agents again")
    kinds = [args.kind] if args.kind else host.kinds()
    if any(k not in host.kinds() for k in kinds):
        raise LabError(f"host {host.name} runs no {args.kind} agent (it runs: {', '.join(host.kinds())})")
    before = {(a["host"], a["agent_type"]): a["started_at"] for a in api.agents()}
    settings = _agent_settings(state)
    if state.mode == "distributed":
        for kind in kinds:
            stop_agents(host, [a for a in host.agents if a.kind == kind])
            host.agents = [a for a in host.agents if a.kind != kind]
            host.agents.append(spawn_agent(state, host, kind, log_dir(state_dir)))
        state.save(state_path(state_dir))
    else:
        requests = restart_dir(state_dir)
        requests.mkdir(parents=True, exist_ok=True)
        files = [requests / f"{host.name}.{kind}" for kind in kinds]
        for f in files:
            f.touch()
        deadline = time.monotonic() + 15
        while any(f.exists() for f in files):
            if time.monotonic() > deadline:
                for f in files:
                    f.unlink(missing_ok=True)
                raise LabError("no server restarted the agents: in embedded mode they are threads of "
                               f"`fermion all-in-one`, which must run with the same state directory ({state_dir})")
            time.sleep(0.1)
    _wait_agents(state, api, args.wait, state_dir, settings, [(host, k) for k in kinds], _older(before))
    print(f"host {host.name}: restarted {', '.join(kinds)} agent{'s' if len(kinds) > 1 else ''}; alive again")
    return 0


def _agent_settings(state: LabState) -> cfg.Settings | None:
    """Distributed mode: the settings the lab starts agents with (for hints when they do not report)."""
    if state.mode != "distributed":
        return None
    return cfg.load(state.config or None, {**os.environ, **state.agent_env})


def _older(started: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The agents' start times from before now, less those of this very second: an agent (re)started
    within the same second has the same started_at, which then cannot tell the new agent from the old."""
    floor = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {k: v for k, v in started.items() if v < floor}


def _fail(args: argparse.Namespace, state: LabState, state_dir: Path) -> int:
    from fermion.lab import failure

    lost = failure.fail(state, state_dir, args.host)
    what = "agents stopped" if state.mode == "embedded" else "agent processes killed"
    print(f"host {args.host} failed: {what}, links cut, {len(lost.killed)} router processes killed "
          f"(keepalived), {len(lost.namespaces)} router and DHCP namespaces gone; `fermion lab heal {args.host}` "
          "brings it back")
    return 0


def _heal(args: argparse.Namespace, state: LabState, state_dir: Path, api: Api) -> int:
    from fermion.lab import failure

    before = {(a["host"], a["agent_type"]): a["started_at"] for a in api.agents()}
    failure.heal(state, state_dir, args.host)
    host = state.hosts[args.host]
    _wait_agents(state, api, args.wait, state_dir, _agent_settings(state), [(host, k) for k in host.kinds()],
                 _older(before))
    print(f"host {args.host} healed: links up; agents alive again")
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
        failed = " FAILED (links cut; `fermion lab heal`)" if host.failed else ""
        print(f"  host {host.name:<12} underlay {host.underlay_ip:<13} {status or 'no agents'}{failed}")
    for inst in state.instances.values():
        port = api.port(inst.port_id)
        status = f"port {port['status']}" if port else "port deleted"
        print(f"  instance {inst.name:<10} on {inst.host:<10} ip {inst.ip or '-':<15} mac {inst.mac} {status}")
