"""A second server on a taken port says which process holds it, before printing or migrating anything."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.support.servers import fermion_cmd


def test_all_in_one_on_a_taken_port_names_the_process_and_prints_no_banner(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "fermion.toml"
        config.write_text(f"[server]\nport = {port}\n")
        env = {**os.environ, "FERMION_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.run(fermion_cmd("all-in-one", "--config", str(config)), env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert proc.stdout == "", proc.stdout  # no banner, no "serving"
    assert f"cannot serve on 127.0.0.1:{port}: the port is taken by pid {os.getpid()} (" in proc.stderr, proc.stderr
    assert "pytest" in proc.stderr or "python" in proc.stderr  # the holder's command line
    assert not (tmp_path / "state" / "fermion.sqlite").exists()  # nothing done before the check


def test_a_port_in_time_wait_only_is_not_taken() -> None:
    """A server just stopped leaves its connections in TIME_WAIT: the next one may listen (uvicorn sets
    SO_REUSEADDR on its sockets), so that is not reported as taken."""
    from fermion.cli.ports import taken_by

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert (taken_by("127.0.0.1", port) or "").startswith(f"pid {os.getpid()} (")
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end waits in TIME_WAIT
        client.close()
    assert taken_by("127.0.0.1", port) is None
