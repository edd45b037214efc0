"""The README runs as written: every ```console block, in order, in one shell, against a live all-in-one
started with `scripts/run` (the README's own command) and the lab. Each command must succeed (or fail
where the README shows it failing) and print lines of the shape the README shows.

A few values differ from a user's machine so that the test can run beside anything else: the servers
listen on free ports instead of 9696 and 9697, the lab's namespaces carry a prefix of their own instead of
`fl` and the distributed example's RPC prefix is unique; they are substituted in the commands and in the
shown output. Everything the test starts is stopped and every
namespace it made removed, even when a step fails.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fermion.dataplane import netns
from tests.dataplane.lab import require_root
from tests.support.readme import Step, readme_steps, same_shape
from tests.support.servers import free_port, rabbitmq_available, wait_until_up

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 120.0


class Shell:
    """One bash process the steps are pasted into, so variables and exports carry from step to step."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc", "-s"], cwd=REPO, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, bufsize=1)
        self.count = 0

    def run(self, command: str, timeout: float = STEP_TIMEOUT) -> tuple[int, str]:
        self.count += 1
        marker = f"@@fermion-readme-step-{self.count} "
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{{\n{command}\n}} </dev/null 2>&1\nprintf '\\n{marker}%d\\n' $?\n")
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()  # read unbuffered: select() must see what is still unread
        out = ""
        deadline = time.monotonic() + timeout
        while (at := out.find("\n" + marker)) < 0 or not out.endswith("\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no end after {timeout:.0f}s; output so far:\n{out}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the shell exited; output:\n{out}")
            out += chunk.decode(errors="replace")
        return int(out[at + 1 + len(marker):].split()[0]), out[:at]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass(frozen=True)
class Local:
    """What this run uses instead of the README's fixed values."""

    port: int  # the all-in-one's, instead of 9696
    distributed_port: int  # the distributed example's server, instead of 9697
    prefix: str  # the lab's namespaces, instead of fl
    rpc_prefix: str  # the distributed example's exchanges and queues, instead of fermion-demo

    def __call__(self, text: str) -> str:
        return (text.replace("9696", str(self.port)).replace("9697", str(self.distributed_port))
                .replace("fl-", f"{self.prefix}-").replace("fermion-demo", self.rpc_prefix))


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[tuple[dict[str, str], Local]]:
    require_root(("ip", "bridge", "dnsmasq", "udhcpc", "ping", "nft", "curl", "jq"), "the README walkthrough")
    if not rabbitmq_available():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672 (the README's distributed example needs it)")
    local = Local(free_port(), free_port(), "fr" + uuid.uuid4().hex[:5], f"fermion-readme-{uuid.uuid4().hex[:8]}")
    config = tmp_path / "fermion.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {local.port}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "FERMION_"))}
    env.update(FERMION_CONFIG=str(config), FERMION_STATE_DIR=str(tmp_path / "state"),
               FERMION_LAB_PREFIX=local.prefix, HOME=str(tmp_path), TERM="dumb")
    log = open(tmp_path / "all-in-one.log", "wb")  # noqa: SIM115 - handed to the child
    server = subprocess.Popen([str(REPO / "scripts" / "run")], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    log.close()
    try:
        if not wait_until_up(f"http://127.0.0.1:{local.port}", server, timeout=120):
            raise AssertionError(f"scripts/run did not serve: {(tmp_path / 'all-in-one.log').read_text()[-3000:]}")
        yield env, local
    finally:
        fermion = REPO / ".venv" / "bin" / "fermion"
        subprocess.run([str(fermion), "lab", "down"], env=env, capture_output=True, timeout=120, check=False)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        for name in netns.names(local.prefix + "-"):
            netns.delete(name)
        _drop_exchange(f"{local.rpc_prefix}.hints")


def _drop_exchange(name: str) -> None:
    """The distributed example's deployment keeps its hints exchange; the test must not leave it behind."""
    import kombu

    with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//", connect_timeout=2) as conn:
        conn.default_channel.exchange_delete(name)


def test_every_console_block_of_the_readme_runs_as_written(all_in_one: tuple[dict[str, str], Local]) -> None:
    env, local = all_in_one
    if shutil.which("openstack", path=str(REPO / ".venv" / "bin")) is None:
        pytest.skip("the openstack CLI is not in .venv (scripts/bootstrap installs it)")
    shell = Shell(env)
    try:
        steps: list[Step] = readme_steps(REPO / "README.md")
        for step in steps:
            command = local(step.command)
            try:
                status, output = shell.run(command)
            except AssertionError as err:
                raise AssertionError(f"README.md line {step.line}: $ {step.command}\n{err}") from None
            where = f"README.md line {step.line}: $ {step.command}\n--- output (exit {status}):\n{output}"
            if step.expect_failure:
                assert status != 0, f"the README shows this failing, it succeeded: {where}"
            else:
                assert status == 0, f"failed: {where}"
            missing = same_shape([local(s) for s in step.shown], output)
            assert not missing, f"output lacks lines like {missing}: {where}"
    finally:
        shell.close()
