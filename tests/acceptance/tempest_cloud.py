"""A throw-away cloud for the upstream API tests: Keystone (SQLite, Fernet tokens, served by gunicorn) and a
Fermion server in keystone mode registered as its `network` service, both on free loopback ports in a private
temporary directory, and the L2, DHCP and L3 agents of an emulated network host (tempest_hosts.py); then
`tempest run` with a tempest.conf that describes exactly this cloud.

Run through scripts/tempest, which installs the tools first. Every process started here runs in a session of
its own and is ended (its process group, by pid) when the run ends, however it ends; the namespaces and the
directory go too.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from fermion.dataplane import DataplaneError
from fermion.lab.instances import Api, LabError, ensure_external_network
from fermion.lab.state import LabState
from tests.acceptance.tempest_hosts import NEEDS_AGENTS, TRANSPORT_URL, NetworkHost, unavailable

REPO = Path(__file__).resolve().parents[2]
# the network API tests of both suites (their scenario tests need instances)
DEFAULT_REGEX = r"^(tempest\.api\.network|neutron_tempest_plugin\.api)\."
REGION = "RegionOne"
# tempest's own subnets come from here; the external network's is the lab's (198.19.0.0/24)
PROJECT_CIDR = "10.100.0.0/16"
PROJECT_V6_CIDR = "2001:db8::/48"
KNOWN_FAILURES = Path(__file__).resolve().with_name("known_failures.txt")
AGENTS_WAIT = 60.0  # seconds for the agents to report alive

# Reads a subunit v2 stream (stdin) with the tools' Python, writes one JSON object per test (stdout).
_SUBUNIT_TO_JSON = r"""
import json, sys
import subunit, testtools
def emit(test):
    details = test["details"]
    text = ""
    for key in ("reason", "traceback"):
        if key in details:
            text = details[key].as_text()
            break
    print(json.dumps({"id": test["id"], "status": test["status"], "detail": text}))
result = testtools.StreamToDict(emit)
result.startTestRun()
subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout").run(result)
result.stopTestRun()
"""


class SetupError(RuntimeError):
    """The cloud did not come up (exit status 2)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_id(test_id: str) -> str:
    """`pkg.Class.test_x[id-...,smoke]` -> `pkg.Class.test_x`: the name known_failures.txt uses."""
    return re.sub(r"\[[^\]]*\]$", "", test_id)


def cause(detail: str) -> str:
    """One line of a failure's traceback that says why: the error body tempest printed, else the exception."""
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("Details:"):
            return line[:300]
    return (lines[-1] if lines else "")[:300]


class Cloud:
    def __init__(self, tools: Path, work: Path, quiet: bool, hosts: NetworkHost | None) -> None:
        self.tools = tools
        self.work = work
        self.quiet = quiet
        self.hosts = hosts  # None: no agents
        self.procs: list[subprocess.Popen[bytes]] = []
        self.admin_password = secrets.token_hex(12)
        self.service_password = secrets.token_hex(12)
        self.ks_url = ""
        self.fermion_url = ""
        self.admin_token = ""
        self.public_network_id = ""

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"tempest: {message}", flush=True)

    # -- processes ---------------------------------------------------------------------------------------

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        with open(self.work / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """End every process started here and whatever it forked (its own process group), newest first."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            try:  # children left behind in the group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.procs.clear()

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.work / f"{name}.log", "ab") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, **(env or {})})
        if done.returncode != 0:
            raise SetupError(f"{' '.join(cmd[:3])} failed:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_http(self, name: str, url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise SetupError(f"{name} did not come up at {url}:\n{self.tail(name)}")

    # -- Keystone ----------------------------------------------------------------------------------------

    def start_keystone(self) -> None:
        port = free_port()
        self.ks_url = f"http://127.0.0.1:{port}"
        conf = self.work / "keystone.conf"
        conf.write_text(f"""[DEFAULT]
debug = false
[database]
connection = sqlite:///{self.work / 'keystone.sqlite'}
# a throw-away database: no fsync per write
sqlite_synchronous = false
[cache]
# one process: an in-memory cache is coherent; spares the database the same role and token look-ups
enabled = true
backend = dogpile.cache.memory
[token]
provider = fernet
expiration = 14400
[fernet_tokens]
key_repository = {self.work / 'fernet-keys'}
[fernet_receipts]
key_repository = {self.work / 'fernet-keys'}
[credential]
key_repository = {self.work / 'credential-keys'}
[identity]
# tempest makes users by the hundred: cheap hashes (4 is bcrypt's minimum)
password_hash_rounds = 4
""")
        manage = [str(self.tools / "bin/keystone-manage"), "--config-file", str(conf)]
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        self.say(f"Keystone: database, keys and admin account in {self.work}")
        self.run("keystone-manage", [*manage, "db_sync"])
        for what in ("fernet_setup", "credential_setup"):
            self.run("keystone-manage", [*manage, what, "--keystone-user", user, "--keystone-group", group])
        url = self.ks_url + "/v3"
        self.run("keystone-manage", [*manage, "bootstrap", "--bootstrap-password", self.admin_password,
                                     "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                                     "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
                                     "--bootstrap-region-id", REGION, "--bootstrap-admin-url", url,
                                     "--bootstrap-internal-url", url, "--bootstrap-public-url", url])
        # One worker, one thread: SQLite refuses concurrent writers ("database is locked"), and tempest's
        # workers make and delete users at the same time. Keystone parses the process's command line as its
        # own options: the module hides gunicorn's from it.
        (self.work / "keystone_app.py").write_text(
            "import sys\nsys.argv[1:] = []\nfrom keystone.wsgi.api import application  # noqa: E402,F401\n")
        proc = self.start("keystone", [str(self.tools / "bin/gunicorn"), "--bind", f"127.0.0.1:{port}",
                                       "--workers", "1", "--threads", "1", "--timeout", "120",
                                       "--no-control-socket", "--chdir", str(self.work), "keystone_app:application"],
                          env={"OS_KEYSTONE_CONFIG_FILES": str(conf)})
        self.wait_http("keystone", url, proc)
        self.admin_token = self.token("admin", self.admin_password, "admin")
        self.say(f"Keystone up at {url}")

    def token(self, user: str, password: str, project: str) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        r = httpx.post(self.ks_url + "/v3/auth/tokens", json=body, timeout=30)
        if r.status_code != 201:
            raise SetupError(f"Keystone refused a token for {user}: {r.status_code} {r.text[:500]}")
        return r.headers["X-Subject-Token"]

    def ks(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.request(method, self.ks_url + "/v3" + path, json=body,
                          headers={"X-Auth-Token": self.admin_token}, timeout=30)
        if r.status_code >= 300:
            raise SetupError(f"Keystone {method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else {}

    def register_network_service(self, endpoint: str) -> None:
        """A `service` project with Fermion's service user (admin and service roles), and the network
        service with its endpoints in the catalog."""
        project = self.ks("POST", "/projects", {"project": {"name": "service", "domain_id": "default"}})["project"]
        user = self.ks("POST", "/users", {"user": {"name": "fermion", "password": self.service_password,
                                                   "domain_id": "default"}})["user"]
        roles = {r["name"]: r["id"] for r in self.ks("GET", "/roles")["roles"]}
        if "service" not in roles:  # older Keystones do not bootstrap it
            roles["service"] = self.ks("POST", "/roles", {"role": {"name": "service"}})["role"]["id"]
        for role in ("admin", "service"):
            self.ks("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{roles[role]}")
        service = self.ks("POST", "/services", {"service": {"type": "network", "name": "neutron",
                                                            "description": "Fermion"}})["service"]
        for interface in ("public", "internal", "admin"):
            self.ks("POST", "/endpoints", {"endpoint": {"service_id": service["id"], "interface": interface,
                                                        "url": endpoint, "region_id": REGION}})

    # -- Fermion -----------------------------------------------------------------------------------------

    def start_fermion(self, workers: int) -> None:
        port = free_port()
        self.fermion_url = f"http://127.0.0.1:{port}"
        self.register_network_service(self.fermion_url)
        config = self.work / "fermion.toml"
        config.write_text(f"""[auth]
strategy = "keystone"

[keystone]
auth_url = "{self.ks_url}/v3"
username = "fermion"
password = "{self.service_password}"
project_name = "service"

[network]
dns_domain = "openstackgate.local"  # not the default: the DNS tests check ports keep their dns_domain

[ml2]
# devstack's VNIs: the segment-range tests make ranges of 1050-1155 for a new project and expect no other
# project's network to hold an id there, which random ids from 1000:1999 sometimes did
vxlan_vni_ranges = ["1:1000"]

[quotas]
# neutron-tempest-plugin's gate jobs raise these: a test class makes more routers than the default 10
router = 100
floatingip = 500
security_group = 150
security_group_rule = 1000
""" + ("\n" + self.hosts.rpc_config() if self.hosts else ""))
        database = f"sqlite:///{self.work / 'fermion.sqlite'}"
        env = {"FERMION_CONFIG": str(config), "FERMION_STATE_DIR": str(self.work / "fermion-state")}
        fermion = [str(REPO / ".venv/bin/fermion")]
        self.run("fermion-db", [*fermion, "db", "upgrade", "--database", database], env=env)
        proc = self.start("fermion", [*fermion, "serve", "--host", "127.0.0.1", "--port", str(port),
                                      "--database", database, "--workers", str(workers)], env=env)
        self.wait_http("fermion", self.fermion_url + "/", proc)
        self.say(f"Fermion up at {self.fermion_url} (keystone mode)")

    def fermion(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.request(method, self.fermion_url + "/v2.0" + path, json=body,
                          headers={"X-Auth-Token": self.admin_token}, timeout=30)
        if r.status_code >= 300:
            raise SetupError(f"Fermion {method} {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def extensions(self) -> list[str]:
        return sorted(e["alias"] for e in self.fermion("GET", "/extensions")["extensions"])

    def start_agents(self) -> None:
        """The network host's namespaces and agents, which must report alive."""
        assert self.hosts is not None
        try:
            self.hosts.build()
        except DataplaneError as err:
            raise SetupError(f"the network host's namespaces: {err}") from None
        procs = {}
        for kind, argv in self.hosts.agent_commands(str(self.work / "fermion.toml")).items():
            procs[kind] = self.start(f"agent-{kind}", argv, env={"FERMION_STATE_DIR": str(self.work / "agents")})
        deadline = time.monotonic() + AGENTS_WAIT
        while missing := self.hosts.missing(self.fermion("GET", "/agents")["agents"]):
            for kind, proc in procs.items():
                if proc.poll() is not None:
                    raise SetupError(f"the {kind} agent exited:\n{self.tail(f'agent-{kind}')}")
            if time.monotonic() > deadline:
                raise SetupError(f"agents not alive after {AGENTS_WAIT:.0f}s: {', '.join(missing)}")
            time.sleep(0.2)
        self.say(f"agents of host {self.hosts.host.name} alive (namespaces {self.hosts.state.prefix}-*, "
                 f"RPC prefix {self.hosts.rpc_prefix})")

    def create_public_network(self) -> None:
        """The lab's external network: flat, on the physnet the network host's eth2 carries."""
        client = httpx.Client(base_url=self.fermion_url, timeout=30, headers={"X-Auth-Token": self.admin_token})
        state = self.hosts.state if self.hosts else LabState(prefix="", mode="distributed", endpoint="")
        try:
            with client:
                self.public_network_id = ensure_external_network(state, Api(self.fermion_url, client))["id"]
        except LabError as err:
            raise SetupError(f"the public network: {err}") from None

    # -- tempest -----------------------------------------------------------------------------------------

    def write_tempest_conf(self, extensions: list[str]) -> Path:
        path = self.work / "tempest" / "etc" / "tempest.conf"
        build_timeout = ("# the agents' ports turn ACTIVE in seconds; under load tempest waits up to a minute\n"
                         "build_timeout = 60" if self.hosts else
                         "# nothing waits for a data plane (no agents run): a status that is not there in 10 s "
                         "never comes\nbuild_timeout = 10")
        path.parent.mkdir(parents=True)
        path.write_text(f"""[DEFAULT]
log_file = {self.work / 'tempest' / 'tempest.log'}

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = admin
admin_password = {self.admin_password}
admin_project_name = admin
admin_domain_name = Default

[identity]
uri_v3 = {self.ks_url}/v3
auth_version = v3
region = {REGION}

[service_available]
neutron = true
nova = false
glance = false
cinder = false
swift = false
horizon = false

[network]
region = {REGION}
project_network_cidr = {PROJECT_CIDR}
project_network_mask_bits = 28
project_network_v6_cidr = {PROJECT_V6_CIDR}
project_network_v6_mask_bits = 64
public_network_id = {self.public_network_id}
floating_network_name = public
{build_timeout}

[network-feature-enabled]
api_extensions = {','.join(extensions)}
ipv6 = true
ipv6_subnet_attributes = true
port_security = {'true' if 'port-security' in extensions else 'false'}
floating_ips = {'true' if 'router' in extensions else 'false'}

[neutron_plugin_options]
available_type_drivers = flat,vlan,vxlan,geneve,gre,local
provider_vlans = physnet1
{'agent_availability_zone = nova' if self.hosts else ''}

[validation]
run_validation = false

[enforce_scope]
neutron = false
keystone = false
""")
        return path

    def run_tempest(self, conf: Path, regex: str, exclude: str | None, concurrency: int,
                    timeout: float) -> list[dict[str, str]]:
        """`tempest run` in the workspace; the results of every test, from stestr's record of the run."""
        workspace = conf.parent.parent
        tempest = str(self.tools / "bin/tempest")
        # TMPDIR: tempest keeps its locks in the temporary directory, which here is ours
        (self.work / "tmp").mkdir(exist_ok=True)
        env = {"PATH": f"{self.tools / 'bin'}:{os.environ.get('PATH', '')}", "TMPDIR": str(self.work / "tmp")}
        self.say(f"tempest run --regex '{regex}' --concurrency {concurrency} (output: tempest-run.log)")
        cmd = [tempest, "run", "--config-file", str(conf), "--regex", regex, "--concurrency", str(concurrency)]
        if exclude:
            cmd += ["--exclude-regex", exclude]
        proc = self.start("tempest-run", cmd, env=env, cwd=workspace)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SetupError(f"tempest run took longer than {timeout:.0f}s") from None
        if not (workspace / ".stestr").is_dir():
            raise SetupError(f"tempest run recorded nothing:\n{self.tail('tempest-run')}")
        last = subprocess.run([str(self.tools / "bin/stestr"), "last", "--subunit"], cwd=workspace, env={
            **os.environ, **env}, capture_output=True, check=False)
        parsed = subprocess.run([str(self.tools / "bin/python"), "-c", _SUBUNIT_TO_JSON], input=last.stdout,
                                capture_output=True, check=True)
        return [json.loads(line) for line in parsed.stdout.decode().splitlines() if line.strip()]


def known_failures() -> dict[str, str]:
    """known_failures.txt: `test id  # reason` per line; the id without its `[id-...]` tags."""
    known = {}
    for line in KNOWN_FAILURES.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        test, sep, reason = line.partition(" # ")
        assert sep and reason.strip(), f"known_failures.txt: no reason given for {line!r}"
        known[test.strip()] = reason.strip()
    return known


def rerun_regex(test_ids: list[str]) -> str:
    """A regex selecting exactly these tests (short ids, with or without their [id-...] tags)."""
    return "^(" + "|".join(re.escape(t) for t in sorted(test_ids)) + r")(\[|$)"


def with_rerun(results: list[dict[str, str]], again: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first run's results, where a failed test that passed when run again alone counts as passed, with
    its first failure kept as `rerun` (a race between an upstream test and a fast agent, as the DHCP port
    taking the address a test was about to ask for, is not a Fermion fault; a fault fails both times)."""
    passed = {short_id(r["id"]) for r in again if r["status"] == "success"}
    return [{**r, "status": "success", "rerun": cause(r["detail"])}
            if r["status"] == "fail" and short_id(r["id"]) in passed else r for r in results]


def summarize(results: list[dict[str, str]], seconds: float) -> str:
    counts = Counter({"success": 0, "fail": 0, "skip": 0})
    counts.update(r["status"] for r in results)
    lines = [f"tempest: {counts['success']} passed, {counts['fail']} failed, {counts['skip']} skipped "
             f"in {seconds:.0f}s"]
    failed = sorted((short_id(r["id"]), cause(r["detail"])) for r in results if r["status"] == "fail")
    lines += [f"  FAILED {test}\n      {why}" for test, why in failed]
    flaky = sorted((short_id(r["id"]), r["rerun"]) for r in results if "rerun" in r)
    lines += [f"  FAILED FIRST, PASSED WHEN RUN AGAIN {test}\n      {why}" for test, why in flaky]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/tempest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", type=Path, required=True, help="the virtualenv with Keystone and tempest")
    p.add_argument("--regex", default=DEFAULT_REGEX, help=f"tests to run (default: {DEFAULT_REGEX})")
    p.add_argument("--exclude-regex", help="tests not to run, of those --regex selects")
    p.add_argument("--concurrency", type=int, default=2, help="tempest workers (default: 2)")
    p.add_argument("--fermion-workers", type=int, default=1, help="Fermion server processes (default: 1)")
    p.add_argument("--timeout", type=float, default=3600, help="give up on tempest after this many seconds")
    p.add_argument("--transport-url", default=TRANSPORT_URL,
                   help=f"the RabbitMQ the server and the agents share (default: {TRANSPORT_URL})")
    p.add_argument("--no-agents", action="store_true",
                   help="the API server alone (no namespaces, no RabbitMQ): the tests that need agents are not run")
    p.add_argument("--results", type=Path, help="write every test's id, status and detail here (JSON)")
    p.add_argument("--keep", type=Path, help="copy the logs and configuration files into this directory")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    args = p.parse_args(argv)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    no_agents = "--no-agents" if args.no_agents else unavailable(args.transport_url)
    exclude = args.exclude_regex
    if no_agents:
        # printed even with --quiet: the run is smaller than asked
        print(f"tempest: no agents ({no_agents}): the tests that need them are not run", flush=True)
        exclude = "|".join(filter(None, [exclude, *NEEDS_AGENTS]))
    work = Path(tempfile.mkdtemp(prefix="fermion-tempest-"))
    hosts = None if no_agents else NetworkHost(args.transport_url)
    cloud = Cloud(args.tools.resolve(), work, args.quiet, hosts)
    started = time.monotonic()
    try:
        cloud.start_keystone()
        cloud.start_fermion(args.fermion_workers)
        if hosts:
            cloud.start_agents()
        extensions = cloud.extensions()
        cloud.say(f"Fermion advertises {len(extensions)} extensions: {' '.join(extensions)}")
        cloud.create_public_network()
        conf = cloud.write_tempest_conf(extensions)
        results = cloud.run_tempest(conf, args.regex, exclude, args.concurrency, args.timeout)
        failed = sorted({short_id(r["id"]) for r in results if r["status"] == "fail"} - set(known_failures()))
        if failed:  # once more, alone: what fails twice is reported
            results = with_rerun(results, cloud.run_tempest(conf, rerun_regex(failed), None, 1, args.timeout))
        if args.results:
            args.results.write_text(json.dumps({"extensions": extensions, "no_agents": no_agents,
                                                "tests": results}, indent=1))
        print(summarize(results, time.monotonic() - started), flush=True)
        if not results:
            print(f"tempest: no test ran:\n{cloud.tail('tempest-run')}", file=sys.stderr)
            return 1
        return 1 if any(r["status"] == "fail" for r in results) else 0
    except SetupError as err:
        print(f"tempest: {err}", file=sys.stderr)
        return 2
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # what a signal would ask for is under way
            signal.signal(sig, signal.SIG_IGN)
        cloud.stop_all()
        if hosts:
            hosts.destroy()
            if hosts.leftovers():
                print(f"tempest: could not delete the namespaces {' '.join(hosts.leftovers())}", file=sys.stderr)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("keystone.log", "keystone-manage.log", "fermion.log", "agent-l2.log", "agent-dhcp.log",
                         "agent-l3.log", "tempest-run.log",
                         "tempest/tempest.log", "tempest/etc/tempest.conf", "keystone.conf", "fermion.toml"):
                if (work / name).exists():
                    shutil.copy(work / name, args.keep / Path(name).name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
