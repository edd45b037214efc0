"""Runs `openstack` commands for the compatibility tests without paying the client's start-up (about a second of
CPU per call) each time: one process imports openstackclient once, then for every line of JSON on stdin (an argv)
runs the same entry point as the `openstack` script, `openstackclient.shell.main`, and answers one line of JSON
with its exit status, stdout and stderr. Every call builds a new shell, session and configuration, as a new
process would.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys

from openstackclient.shell import main


def run(argv: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    # the shell adds a console handler to the root logger on each run, bound to the stderr of that moment
    for handler in list(root.handlers):
        root.removeHandler(handler)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - reported as the command's failure, as the script would
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
    return {"returncode": code or 0, "stdout": out.getvalue(), "stderr": err.getvalue()}


def serve() -> None:
    reply = sys.stdout
    for line in sys.stdin:
        answer = run(json.loads(line))
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
