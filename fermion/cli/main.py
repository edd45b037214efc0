"""The `fermion` command."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from fermion import logs
from fermion.config import settings as cfg


def _load(args: argparse.Namespace) -> cfg.Settings:
    settings = cfg.load(getattr(args, "config", None))
    if getattr(args, "database", None):
        settings = settings.replace("database", url=args.database)
    return settings.replace("logging", level=getattr(args, "log_level", None),
                            format=getattr(args, "log_format", None))


def _logging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"],
                   help="default: [logging] level, $FERMION_LOG_LEVEL or info")
    p.add_argument("--log-format", choices=["text", "json"], help="default: [logging] format or text")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (default: $FERMION_CONFIG)")
    p.add_argument("--database", help="database URL (default: config, $FERMION_DATABASE_URL, or SQLite)")


def cmd_db(args: argparse.Namespace) -> int:
    from fermion.db import migrate
    from fermion.db.engine import Database

    settings = _load(args)
    url = settings.database_url
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".", exist_ok=True)
    db = Database(url)
    try:
        if args.action == "upgrade":
            migrate.upgrade(db.engine, args.revision)
            print(f"database {db.engine.url.render_as_string(hide_password=True)} is at revision "
                  f"{migrate.current(db.engine)}")
        else:
            print(migrate.current(db.engine) or "(no schema)")
    finally:
        db.dispose()
    return 0


def serve(settings: cfg.Settings, banner: str | None = None, lab: bool = False, config: str | None = None) -> int:
    # no collections while start-up builds long-lived objects (a third of the import time); they are
    # frozen and the collector enabled just before serving
    gc.disable()
    import uvicorn

    from fermion import memory
    from fermion.db.migrate import SchemaNotCurrent
    from fermion.runtime.embedded import build_app

    memory.limit_arenas()
    s = settings.server
    log_level = settings.logging.level.lower()
    logs.setup(log_level, settings.logging.format)
    try:
        app = build_app(settings)
    except SchemaNotCurrent as err:
        print(f"fermion: refusing to start: {err}", file=sys.stderr)
        return 2
    if lab:
        from fermion.lab.state import state_path
        from fermion.runtime.lab import LabSupervisor

        supervisor = LabSupervisor(settings, app.transport, state_path(cfg.state_dir()))

        async def _start_lab() -> None:
            supervisor.start()

        async def _stop_lab() -> None:
            supervisor.stop()

        app.on_startup.append(_start_lab)
        app.on_shutdown.insert(0, _stop_lab)
    if banner:
        print(banner, flush=True)
    print(f"fermion: serving the Neutron v2.0 API on http://{s.host}:{s.port}", flush=True)
    memory.freeze_startup_objects()
    # log_config None: uvicorn's own lines go through our handler and format; the access log is ours
    options: dict[str, Any] = {"host": s.host, "port": s.port, "log_level": log_level, "log_config": None,
                               "access_log": False, "timeout_keep_alive": 75, "ws": "none", "lifespan": "on"}
    if s.workers == 1:
        return _run_one(app, options)
    # the workers are new interpreters: they read their settings from the environment
    app.services.db.dispose()
    os.environ.update(FERMION_SERVE_DATABASE_URL=settings.database_url, FERMION_LOG_LEVEL=log_level,
                      FERMION_LOG_FORMAT=settings.logging.format)
    if config:
        os.environ["FERMION_CONFIG"] = os.path.abspath(config)
    with _multiprocess_metrics():
        uvicorn.run("fermion.runtime.embedded:app_from_env", factory=True, workers=s.workers, **options)
    return 0


def _run_one(app: Any, options: dict[str, Any]) -> int:
    """uvicorn.run for one process, telling the console's open event streams to end as soon as the server
    stops (uvicorn waits for open responses before it shuts the application down)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if app.console is not None:
                app.console.feed.close()
            await super().shutdown(sockets)

    server = Server(uvicorn.Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 3  # 3: uvicorn's "could not start" (e.g. the port is taken)


def _port_taken(settings: cfg.Settings) -> bool:
    """Say so (and by which process) before anything else is printed or done."""
    from fermion.cli.ports import taken_by

    s = settings.server
    holder = taken_by(s.host, s.port)
    if holder:
        print(f"fermion: cannot serve on {s.host}:{s.port}: the port is taken by {holder}. Is Fermion already "
              "running? Stop that process, or choose another port ([server] port in the --config file).",
              file=sys.stderr)
    return holder is not None


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """Workers keep their counters in files of one fresh directory, summed by whichever answers /metrics."""
    from fermion.metrics import MULTIPROCESS_ENV

    if os.environ.get(MULTIPROCESS_ENV):  # the operator chose a directory
        yield
        return
    path = tempfile.mkdtemp(prefix="fermion-metrics-")
    os.environ[MULTIPROCESS_ENV] = path
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(path, ignore_errors=True)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(args).replace("server", host=args.host, port=args.port, workers=args.workers).validate()
    if _port_taken(settings):
        return 1
    return serve(settings, config=args.config)


def cmd_all_in_one(args: argparse.Namespace) -> int:
    from fermion.db import migrate
    from fermion.db.engine import Database

    settings = _load(args)
    if _port_taken(settings):
        return 1
    url = settings.database_url
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".", exist_ok=True)
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    s = settings.server
    endpoint = f"http://{s.host}:{s.port}"
    venv_bin = os.path.dirname(sys.executable)
    banner = f"""
Fermion all-in-one is up.
  endpoint : {endpoint}  (OpenStack Neutron v2.0 API, noauth: you act as project
             '{settings.auth.default_project_id}' with roles {', '.join(settings.auth.default_roles)})
  database : {db.engine.url.render_as_string(hide_password=True)}  (kept across restarts)
  console  : {endpoint}/ui  (the web console: live topology, trace, agents, quotas)

Try it from another shell:
  export OS_AUTH_TYPE=none OS_NETWORK_ENDPOINT_OVERRIDE={endpoint}
  {venv_bin}/openstack network create demo
  {venv_bin}/openstack subnet create --network demo --subnet-range 10.0.0.0/24 demo-subnet
  {venv_bin}/openstack port create --network demo demo-port
  {venv_bin}/openstack port list
  curl -s {endpoint}/v2.0/networks

Emulated hosts and instances with real packets (as root, from another shell):
  {venv_bin}/fermion lab up
  {venv_bin}/fermion lab boot --network demo --host compute1 vm1
  {venv_bin}/fermion lab boot --network demo --host compute2 vm2
  {venv_bin}/fermion lab ping vm1 vm2
  {venv_bin}/fermion lab down

Stop with Ctrl-C.
"""
    return serve(settings.validate(), banner, lab=settings.server.workers == 1, config=args.config)


def cmd_agent(args: argparse.Namespace) -> int:
    import signal
    import time

    from fermion import metrics
    from fermion.runtime.agents import dhcp_agent, l2_agent, l3_agent, ovs_agent, parse_mappings
    from fermion.runtime.transport import transport_for

    settings = _load(args).replace("rpc", transport_url=args.transport_url)
    settings = settings.replace("agents", metrics_address=args.metrics_address,
                                availability_zone=args.availability_zone).validate()
    if not settings.rpc.transport_url:
        print("fermion agent: needs [rpc] transport_url (or --transport-url / FERMION_TRANSPORT_URL): agents in "
              "separate processes talk to the server over RabbitMQ", file=sys.stderr)
        return 2
    logs.setup(settings.logging.level, settings.logging.format)
    stop_metrics = None
    if settings.agents.metrics_address:
        try:
            stop_metrics = metrics.serve(settings.agents.metrics_address)
        except OSError as err:
            print(f"fermion agent: cannot serve metrics on {settings.agents.metrics_address}: {err}",
                  file=sys.stderr)
            return 2
    transport = transport_for(settings)
    if args.kind == "l2":
        agent = l2_agent(settings, transport, args.host, args.netns, args.local_ip,
                         parse_mappings(args.physical_interface_mappings or []))
    elif args.kind == "ovs":
        agent = ovs_agent(settings, transport, args.host, args.netns, args.local_ip,
                          parse_mappings(args.bridge_mappings or []), args.tunnel_types or "", args.ovs_rundir,
                          tap_type="afxdp-nonpmd" if args.afxdp else "")
    elif args.kind == "l3":
        agent = l3_agent(settings, transport, args.host, args.netns, agent_mode=args.agent_mode)
    else:
        agent = dhcp_agent(settings, transport, args.host, args.netns)
    stopping: list[int] = []  # a list, not an Event: a handler that takes a lock can deadlock its own thread
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
    agent.start()
    print(f"fermion agent {args.kind}: host {args.host}"
          f"{' (namespace ' + args.netns + ')' if args.netns else ''}"
          f"{', metrics on http://' + settings.agents.metrics_address + '/metrics' if stop_metrics else ''}",
          flush=True)
    # short sleeps, not one wait: the kernel may hand the signal to any of the agent's threads, and Python
    # runs the handler only when the main thread next runs (an agent stopped by SIGTERM waited forever)
    while not stopping:
        time.sleep(0.5)
    agent.stop()
    transport.close()
    if stop_metrics is not None:
        stop_metrics()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args)
    print(f"configuration OK (database {settings.database_url.split('@')[-1]}, auth {settings.auth.strategy})")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    # imported on use: the lab pulls in pyroute2 and httpx, which `fermion serve` does not need
    from fermion.cli import lab

    return lab.run(args)


def _endpoint() -> str:
    """The server the openstack CLI is pointed at, unless told otherwise."""
    return (os.environ.get("FERMION_ENDPOINT") or os.environ.get("OS_NETWORK_ENDPOINT_OVERRIDE")
            or "http://127.0.0.1:9696")


def _add_lab_parser(sub: argparse._SubParsersAction) -> None:
    from fermion.lab.state import DEFAULT_HOSTS

    endpoint = _endpoint()
    p_lab = sub.add_parser("lab", help="emulated hosts and instances (needs root)")
    p_lab.add_argument("--endpoint", default=endpoint, help="the Fermion server (default: $FERMION_ENDPOINT, "
                       f"$OS_NETWORK_ENDPOINT_OVERRIDE or http://127.0.0.1:9696; now {endpoint})")
    p_lab.add_argument("--config", help="TOML config file (distributed mode starts the agents with it)")
    verbs = p_lab.add_subparsers(dest="verb", required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help)
        # accepted after the verb too (`lab up --config X`); SUPPRESS keeps a value given before it
        p.add_argument("--endpoint", default=argparse.SUPPRESS, help="the Fermion server (lab up)")
        p.add_argument("--config", default=argparse.SUPPRESS, help="TOML config file (distributed mode)")
        return p

    p = verb("up", "create emulated hosts and start their agents")
    p.add_argument("--hosts", default=",".join(DEFAULT_HOSTS),
                   help="comma-separated host names, each optionally with its L2 agent: "
                        "compute1:ovs,compute2:linuxbridge")
    p.add_argument("--agent", choices=["linuxbridge", "ovs"], default="linuxbridge",
                   help="the L2 agent of hosts --hosts names without one: linuxbridge (default) or ovs (Open vSwitch)")
    p.add_argument("--dhcp-host", default=None,
                   help="host (or comma-separated hosts) that run the DHCP and L3 agents (default: network1)")
    p.add_argument("--network-hosts", type=int, metavar="N",
                   help="N network nodes named network1..N (DHCP and L3 agents; added to --hosts), e.g. 2 for "
                        "HA routers")
    p.add_argument("--zones", default="", metavar="HOST=ZONE,...",
                   help="availability zones of hosts (default: every host in zone nova)")
    p.add_argument("--physnets", default="", metavar="HOST=PHYSNET,...",
                   help="a physical network of its own on a host's eth1, e.g. racks of a routed network "
                        "(default: every host on physnet1)")
    p.add_argument("--dvr", action="store_true",
                   help="an L3 agent on every host for distributed routers: dvr_snat on the network nodes, dvr "
                        "on the others")
    p.add_argument("--distributed", action="store_true",
                   help="agents as `fermion agent` processes over RabbitMQ ([rpc] of --config) instead of "
                        "threads of the all-in-one server")
    p.add_argument("--prefix", default=os.environ.get("FERMION_LAB_PREFIX", "fl"),
                   help="namespace name prefix (default: $FERMION_LAB_PREFIX or fl)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the agents to report")
    p = verb("boot", "plug an instance into a network on a host (DHCP address)")
    p.add_argument("--network", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--security-group", action="append", metavar="GROUP",
                   help="security group name or id (repeatable; default: the project's default group)")
    p.add_argument("--fixed-ip", metavar="IP", help="the port's address (default: one the server picks)")
    p.add_argument("--no-port-security", action="store_true",
                   help="port_security_enabled false: no security groups, no anti-spoofing")
    p.add_argument("name")
    p = verb("ping", "ping from an instance (or 'external') to another, 'external' or an address")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("-c", "--count", type=int, default=3)
    p.add_argument("-w", "--deadline", type=float, default=5.0,
                   help="seconds to keep pinging until COUNT replies came (a new path may need a moment; "
                        "default 5, 0: COUNT pings and stop)")
    p = verb("exec", "run a command in an instance's namespace (or 'external', or a host's)")
    p.add_argument("name")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command and its arguments")
    verb("ls", "hosts, agents and instances")
    p = verb("rm", "delete an instance and its port")
    p.add_argument("name")
    p = verb("restart-agent", "restart a host's agents (all, or one kind); the kernel state stays")
    p.add_argument("host")
    p.add_argument("kind", nargs="?", choices=["l2", "ovs", "dhcp", "l3"])
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the agents to report")
    p = verb("fail", "lose a host: stop its agents, cut its links, kill its routers' keepalived")
    p.add_argument("host")
    p = verb("heal", "bring a failed host back: links up, agents started again")
    p.add_argument("host")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the agents to report")
    verb("down", "delete everything the lab made")
    p_lab.set_defaults(func=cmd_lab)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fermion", description="Networking-as-a-service (Neutron v2.0 API)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the API server")
    _common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    _logging_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("all-in-one", help="migrate the database and run everything in one process")
    _common(p)
    _logging_options(p)
    p.set_defaults(func=cmd_all_in_one)

    p = sub.add_parser("db", help="database schema")
    _common(p)
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("revision", nargs="?", default="heads")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("agent", help="run an agent for a host (distributed mode)")
    _common(p)
    p.add_argument("kind", choices=["l2", "ovs", "dhcp", "l3"])
    p.add_argument("--host", required=True, help="the host name ports are bound to (binding:host_id)")
    p.add_argument("--netns", help="namespace that plays the host's root (an emulated host)")
    p.add_argument("--local-ip", help="l2: VXLAN tunnel address on this host")
    p.add_argument("--physical-interface-mappings", action="append", help="l2: physnet:interface[,...]")
    p.add_argument("--bridge-mappings", action="append", help="ovs: physnet:bridge[,...]")
    p.add_argument("--tunnel-types", help="ovs: vxlan,gre,geneve (those this host terminates)")
    p.add_argument("--afxdp", action="store_true",
                   help="ovs: instance taps as afxdp-nonpmd ports (faster, but about 70 MiB of vswitchd memory each)")
    p.add_argument("--ovs-rundir", help="ovs: the run directory of this host's ovsdb-server and ovs-vswitchd "
                                        "(started there when not running; default: <state dir>/ovs-<host>)")
    p.add_argument("--agent-mode", choices=["legacy", "dvr", "dvr_snat"],
                   help="l3: legacy, dvr or dvr_snat (default: [l3] agent_mode)")
    p.add_argument("--transport-url", help="amqp:// URL (default: [rpc] transport_url)")
    p.add_argument("--metrics-address", help="HOST:PORT to serve /metrics on (default: [agents] metrics_address)")
    p.add_argument("--availability-zone", help="the zone this host is in (default: [agents] availability_zone, "
                                               "nova)")
    _logging_options(p)
    p.set_defaults(func=cmd_agent)

    _add_lab_parser(sub)

    from fermion.cli import trace  # small: the HTTP client is imported when a trace runs

    trace.add_parser(sub, _endpoint())

    p = sub.add_parser("check-config", help="validate a configuration file and exit")
    _common(p)
    p.set_defaults(func=cmd_check_config)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except cfg.ConfigError as err:
        print(f"fermion: configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
