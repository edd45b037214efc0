"""The lean rtnetlink client and the executor's bulk paths against a real kernel, in a namespace of their own."""

from __future__ import annotations

import errno
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from fermion.dataplane import netns, rtnl
from fermion.dataplane import plan as p
from fermion.dataplane.linux import LinuxHost
from tests.dataplane.lab import require_root


@pytest.fixture
def ns() -> Iterator[str]:
    require_root(("ip",))
    name = f"rt{uuid.uuid4().hex[:8]}-host"
    netns.create(name)
    try:
        yield name
    finally:
        netns.delete(name)


def ip(ns: str, script: str) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, check=True)


def test_link_dump_reads_what_ip_link_shows(ns: str) -> None:
    ip(ns, "link add br-x type bridge\nlink set br-x alias fermion mtu 1400 up\n"
           "link add vx-x type vxlan id 4242 dstport 4789 local 198.18.7.1 nolearning\n"
           "link add tap-a type veth peer name peer-a\nlink set tap-a master br-x\n")
    with_lean = rtnl.Rtnl(ns)
    try:
        links = {link.name: link for link in with_lean.links()}
    finally:
        with_lean.close()
    assert {"lo", "br-x", "vx-x", "tap-a", "peer-a"} <= set(links)
    br = links["br-x"]
    assert (br.kind, br.mtu, br.up, br.alias, br.master) == ("bridge", 1400, True, "fermion", None)
    assert (links["vx-x"].kind, links["vx-x"].vni) == ("vxlan", 4242)
    assert links["tap-a"].master == br.index and links["tap-a"].kind == "veth"
    assert links["lo"].kind == "device" and links["lo"].vni is None
    lean = rtnl.Rtnl(ns)
    try:
        found = lean.find(["tap-a", "no-such-link", "br-x"])
    finally:
        lean.close()
    assert found == {"tap-a": links["tap-a"], "br-x": links["br-x"]}, "by name, the same as in the dump"


def test_many_links_change_in_one_batch_and_each_failure_is_reported(ns: str) -> None:
    ip(ns, "link add br-y type bridge\n" + "".join(f"link add t{i} type veth peer name q{i}\n" for i in range(600)))
    lean = rtnl.Rtnl(ns)
    try:
        index = {link.name: link.index for link in lean.links()}
        changes = [rtnl.LinkChange(index[f"t{i}"], master=index["br-y"], mtu=1380, up=True) for i in range(600)]
        codes = lean.set_links([*changes[:300], rtnl.LinkChange(999_999, up=True), *changes[300:]])
        assert codes[300] == errno.ENODEV
        assert codes[:300] + codes[301:] == [0] * 600
        after = {link.name: link for link in lean.links()}
    finally:
        lean.close()
    assert all(after[f"t{i}"].master == index["br-y"] and after[f"t{i}"].mtu == 1380 and after[f"t{i}"].up
               for i in range(600))


@pytest.mark.parametrize("taps", [3, 90])  # a few: looked up by name; many: one dump
def test_the_executor_attaches_a_run_of_taps_and_reports_only_the_missing_one(ns: str, taps: int) -> None:
    ip(ns, "".join(f"link add tap{i} type veth peer name q{i}\n" for i in range(taps)))
    host = LinuxHost(ns)
    try:
        attach = [p.Attach(f"tap{i}", "brq-z", 1450) for i in range(taps)]
        ops = [p.EnsureBridge("brq-z", 1450), *attach[:1], p.Attach("tap999", "brq-z", 1450), *attach[1:]]
        failed = host.apply(ops)
        assert [(op.name, reason) for op, reason in failed] == [("tap999", "device tap999 does not exist")]
        state = host.observe()
    finally:
        host.close()
    assert all(state.links[f"tap{i}"].master == "brq-z" and state.links[f"tap{i}"].mtu == 1450 for i in range(taps))
    assert state.links["brq-z"].ours and state.links["brq-z"].up


def test_tx_checksum_off_is_what_ethtool_shows(ns: str) -> None:
    ip(ns, "link add tap-c type veth peer name peer-c\n")

    def tx() -> str:
        out = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", "tap-c"], capture_output=True, text=True,
                             check=True).stdout
        return next(line for line in out.splitlines() if line.startswith("tx-checksumming:"))

    assert tx() == "tx-checksumming: on"
    lean = rtnl.Rtnl(ns)
    try:
        assert lean.tx_checksum_off("tap-c") == 0
        assert lean.tx_checksum_off("no-such-dev") == errno.ENODEV
    finally:
        lean.close()
    assert tx() == "tx-checksumming: off"


def test_links_with_an_ipv6_address_are_found(ns: str) -> None:
    ip(ns, "link add tap-d type veth peer name peer-d\nlink add tap-e type veth peer name peer-e\n"
           "addr add 2001:db8:7::1/64 dev tap-d nodad\nlink set lo up\n")
    lean = rtnl.Rtnl(ns)
    try:
        index = {link.name: link.index for link in lean.links()}
        assert lean.ipv6_addressed() == {index["tap-d"], index["lo"]}
    finally:
        lean.close()
