"""Active-mode FTP for conntrack helper tests: a tiny server and a standard-library client, run in namespaces."""

from __future__ import annotations

import subprocess
import sys
from contextlib import AbstractContextManager

from tests.dataplane.lab import serving

# a tiny FTP server (active mode only): it connects back to the address a PORT command names and sends that
# address as the file, so the client learns what the server was told
FTP_SERVER = r"""
import socket, sys, threading
def session(c):
    f = c.makefile("rwb", buffering=0)
    say = lambda text: f.write((text + "\r\n").encode())
    say("220 ready")
    target = None
    for raw in f:
        cmd, _, arg = raw.decode().strip().partition(" ")
        cmd = cmd.upper()
        if cmd == "USER":
            say("331 ok")
        elif cmd == "PASS":
            say("230 ok")
        elif cmd == "TYPE":
            say("200 ok")
        elif cmd == "PORT":
            n = arg.split(",")
            target = (".".join(n[:4]), int(n[4]) * 256 + int(n[5]))
            say("200 ok")
        elif cmd == "RETR" and target:
            try:
                d = socket.create_connection(target, timeout=3)
            except OSError as e:
                say("425 cannot reach %s:%d: %s" % (target + (e,)))
                continue
            say("150 sending")
            d.sendall(("told %s:%d" % target).encode())
            d.close()
            say("226 done")
        elif cmd == "QUIT":
            say("221 bye")
            break
        else:
            say("502 no")
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=session, args=(c,), daemon=True).start()
"""
# an active-mode FTP download with the standard library: prints the file or "error ..."
FTP_CLIENT = r"""
import ftplib, sys
try:
    f = ftplib.FTP(timeout=5)
    f.connect(sys.argv[1], int(sys.argv[2]))
    f.login("user", "secret")
    f.set_pasv(False)
    got = []
    f.retrbinary("RETR file", got.append)
    print(b"".join(got).decode())
    f.quit()
except (OSError, ftplib.Error) as e:
    print("error", e)
"""
FTP_PORT = 2121


def ftp_download(ns: str, server: str, port: int = FTP_PORT) -> str:
    """An active-mode download from the server: "told IP:PORT" (where the server was asked to connect back to)
    or "error ..." (a 425 names the address the server could not reach)."""
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FTP_CLIENT, server, str(port)],
                          capture_output=True, text=True, timeout=30, check=False).stdout.strip()


def ftp_server(ns: str, port: int = FTP_PORT) -> AbstractContextManager[None]:
    return serving(ns, FTP_SERVER, str(port))
