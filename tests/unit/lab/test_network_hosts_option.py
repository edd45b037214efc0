"""`fermion lab up --network-hosts N`: network1..N run the DHCP and L3 agents, added to --hosts."""

from __future__ import annotations

import pytest

from fermion.cli.lab import host_names
from fermion.cli.main import main
from fermion.lab.instances import LabError


def test_network_hosts_are_added_and_run_dhcp_and_l3() -> None:
    assert host_names("compute1,compute2,network1", None, 2) == (
        ["compute1", "compute2", "network1", "network2"], ["network1", "network2"])
    assert host_names("compute1", None, 3) == (
        ["compute1", "network1", "network2", "network3"], ["network1", "network2", "network3"])
    assert host_names("", None, 1) == (["network1"], ["network1"])


def test_without_it_dhcp_host_names_them_as_before() -> None:
    assert host_names("compute1,compute2,network1", None, None) == (
        ["compute1", "compute2", "network1"], ["network1"])
    assert host_names("a,b", "b", None) == (["a", "b"], ["b"])
    assert host_names("a,b", None, None) == (["a", "b"], ["b"])  # no network1: the last host


@pytest.mark.parametrize(("hosts", "dhcp", "count", "message"), [
    ("compute1", "network1", 2, "--network-hosts or --dhcp-host, not both"),
    ("compute1", None, 0, "--network-hosts: from 1 to 9"),
    ("compute1", None, 10, "--network-hosts: from 1 to 9"),
    ("", None, None, "--hosts: name at least one host"),
])
def test_bad_combinations_are_refused(hosts: str, dhcp: str | None, count: int | None, message: str) -> None:
    with pytest.raises(LabError, match=message):
        host_names(hosts, dhcp, count)


def test_fail_and_heal_take_a_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lab", "fail"])
    assert "host" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lab", "up", "--network-hosts", "two"])
    assert "invalid int value" in capsys.readouterr().err
