"""`fermion trace SRC DST [--protocol tcp|udp|icmp] [--port N]`: asks the server's POST /v2.0/traces and prints each
hop with its decision and reason, then the verdict. Exit status: 0 reachable, 1 not, 2 the request failed."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

Post = Callable[[str, dict[str, Any], dict[str, str]], tuple[int, Any]]  # (path, body, headers) -> (status, json)
MARK = {"pass": "pass", "block": "BLOCK", "not_routable": "NO PATH"}


def add_parser(sub: argparse._SubParsersAction, endpoint: str) -> None:
    p = sub.add_parser("trace", help="explain whether SRC reaches DST (ports, addresses, lab instances, 'external')")
    p.add_argument("src", help="a port id, an address, a lab instance name, or 'external'")
    p.add_argument("dst", help="the same kinds as SRC")
    p.add_argument("--protocol", choices=["tcp", "udp", "icmp"],
                   help="default: tcp with --port, icmp (echo) without")
    p.add_argument("--port", type=int, help="tcp/udp destination port, as the source connects to it")
    p.add_argument("--probe", action="store_true",
                   help="also ask each hop's agents what their kernels hold, and show drift (admin)")
    p.add_argument("--endpoint", default=endpoint, help="the Fermion server (default: $FERMION_ENDPOINT, "
                   f"$OS_NETWORK_ENDPOINT_OVERRIDE or http://127.0.0.1:9696; now {endpoint})")
    p.add_argument("--project", help="noauth: act as this project (X-Project-Id; default: the server's default)")
    p.add_argument("--roles", help="noauth: with --project, these roles (default: member)")
    p.add_argument("--token", default=os.environ.get("OS_AUTH_TOKEN"),
                   help="keystone: a token (default: $OS_AUTH_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, post: Post | None = None) -> int:
    protocol = args.protocol or ("tcp" if args.port is not None else "icmp")
    body: dict[str, Any] = {"source": args.src, "destination": args.dst, "protocol": protocol}
    if args.port is not None:
        body["port"] = args.port
    if getattr(args, "probe", False):
        body["probe"] = True
    headers = {}
    if args.project:
        headers.update({"X-Project-Id": args.project, "X-Roles": args.roles or "member"})
    if args.token:
        headers["X-Auth-Token"] = args.token
    try:
        status, answer = (post or _http(args.endpoint))("/v2.0/traces", {"trace": body}, headers)
    except OSError as err:
        print(f"fermion trace: cannot reach {args.endpoint}: {err}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"fermion trace: {_error(status, answer)}", file=sys.stderr)
        return 2
    result = answer["trace"]
    if args.json:
        import orjson

        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(result))
    return 0 if result["reachable"] else 1


def render(result: dict[str, Any]) -> str:
    def end(e: dict[str, Any]) -> str:
        if e["external"]:
            return f"external ({e['address']})" if e.get("address") else "external"
        shown = e["given"] if e["given"] == e["address"] else f"{e['given']} ({e['address'] or 'no address'})"
        return shown

    what = result["protocol"] + (f" port {result['port']}" if result["port"] is not None else " echo")
    lines = [f"trace {end(result['source'])} -> {end(result['destination'])}, {what} (IPv{result['ip_version']})"]
    width = max((len(h["name"]) for h in result["hops"]), default=0)
    for i, hop in enumerate(result["hops"], 1):
        lines.append(f"{i:>3}. {MARK.get(hop['decision'], hop['decision']):<8} {hop['name']:<{width}}  {hop['reason']}")
        lines += _probe_lines(hop.get("probe"))
    lines.append(f"verdict: {result['reason']}")
    if "probe" in result:
        lines.append(f"probe: {result['probe']}")
    return "\n".join(lines)


def _probe_lines(found: dict[str, Any] | None) -> list[str]:
    """A probed hop's result under it: ok, or each host's drift (missing, extra) or why it did not answer."""
    if found is None:
        return []
    pad = " " * 14
    if found["result"] == "ok":
        hosts = ", ".join(sorted({h["host"] for h in found["hosts"]}))
        return [f"{pad}probe: ok on {hosts}"]
    out = [f"{pad}probe: {found['result']}"]
    for host in found["hosts"]:
        if host["result"] == "unanswered":
            out.append(f"{pad}  {host['host']} ({host['agent']}): {host['reason']}")
        out += [f"{pad}  {host['host']} missing: {m}" for m in host.get("missing", ())]
        out += [f"{pad}  {host['host']} extra: {e}" for e in host.get("extra", ())]
    return out


def _error(status: int, answer: Any) -> str:
    try:
        err = answer["NeutronError"]
        return f"{status} {err['type']}: {err['message']}"
    except (KeyError, TypeError):
        return f"{status}: {answer}"


def _http(endpoint: str) -> Post:
    import httpx  # imported on use, as the lab's client

    def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        try:
            resp = httpx.post(endpoint.rstrip("/") + path, json=body, headers=headers, timeout=30)
        except httpx.HTTPError as err:
            raise OSError(str(err)) from err
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    return post
