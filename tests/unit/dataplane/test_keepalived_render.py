"""keepalived for an HA router: the configuration it is given, and the notify script that records its
transitions (run here on a plain file standing for keepalived's fifo)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fermion.dataplane import DataplaneError
from fermion.dataplane import keepalived as ka
from fermion.dataplane import router as rt

WORK = Path("/var/lib/fermion/ha/r1")


def _cfg(**changes: object) -> ka.Config:
    base = dict(router_id="r1", namespace="qrouter-r1", ha_device="ha-0123456789a", vrid=7,
                primary_vip="169.254.0.7/24",
                addresses=(ka.Address("198.18.5.1/24", "qr-aaaaaaaaaaa"),
                           ka.Address("198.18.9.10/24", "qg-ggggggggggg"),
                           ka.Address("198.18.9.20/32", "qg-ggggggggggg")),
                routes=(ka.Route("0.0.0.0/0", ("198.18.9.1",), "qg-ggggggggggg"),
                        ka.Route("198.18.30.0/24", ("198.18.5.20", "198.18.5.21"))))
    base.update(changes)
    return ka.Config(**base)  # type: ignore[arg-type]


def _section(text: str, head: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == head + " {")
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    return [line.strip() for line in lines[start + 1:end]]


def test_every_instance_starts_as_backup_without_preemption_and_fractional_adverts() -> None:
    text = ka.render(_cfg(), WORK)
    instance = _section(text, "vrrp_instance VR_7")
    assert instance[:6] == ["state BACKUP", "interface ha-0123456789a", "virtual_router_id 7", "priority 50",
                            "nopreempt", "advert_int 0.3"]
    assert "garp_master_delay 1" in instance and "garp_master_repeat 3" in instance
    # after a partition the master that yields tells the one that stays, which sends its gratuitous ARPs again
    assert "higher_prio_send_advert" in instance
    defs = _section(text, "global_defs")
    assert "vrrp_version 3" in defs  # fractional advert_int needs VRRPv3
    assert "enable_script_security" in defs
    assert "vrrp_notify_fifo /var/lib/fermion/ha/r1/notify.fifo" in defs
    assert "vrrp_notify_fifo_script /var/lib/fermion/ha/r1/notify.sh" in defs


def test_only_the_primary_vip_is_advertised_everything_else_is_excluded_and_untracked() -> None:
    text = ka.render(_cfg(), WORK)
    assert _section(text, "virtual_ipaddress") == ["169.254.0.7/24 dev ha-0123456789a"]
    assert _section(text, "virtual_ipaddress_excluded") == [
        "198.18.5.1/24 dev qr-aaaaaaaaaaa no_track",
        "198.18.9.10/24 dev qg-ggggggggggg no_track",
        "198.18.9.20/32 dev qg-ggggggggggg no_track",
    ]
    assert _section(text, "virtual_routes") == [
        "0.0.0.0/0 via 198.18.9.1 dev qg-ggggggggggg no_track",
        "198.18.30.0/24 no_track nexthop via 198.18.5.20 nexthop via 198.18.5.21",
    ]


def test_a_router_without_addresses_has_no_empty_sections() -> None:
    text = ka.render(_cfg(addresses=(), routes=()), WORK)
    assert "virtual_ipaddress_excluded" not in text and "virtual_routes" not in text


def test_ipv6_and_link_local_addresses_are_excluded_vips_too() -> None:
    text = ka.render(_cfg(addresses=(ka.Address("2001:db8::1/64", "qr-aaaaaaaaaaa"),
                                     ka.Address("fe80::f816:3eff:fe00:1/64", "qr-aaaaaaaaaaa")),
                          routes=(ka.Route("::/0", ("2001:db8:1::1",), "qg-ggggggggggg"),)), WORK)
    assert _section(text, "virtual_ipaddress_excluded") == [
        "2001:db8::1/64 dev qr-aaaaaaaaaaa no_track",
        "fe80::f816:3eff:fe00:1/64 dev qr-aaaaaaaaaaa no_track",
    ]
    assert _section(text, "virtual_routes") == ["::/0 via 2001:db8:1::1 dev qg-ggggggggggg no_track"]


def test_the_same_router_renders_the_same_text_whatever_the_order() -> None:
    cfg = _cfg()
    shuffled = _cfg(addresses=tuple(reversed(cfg.addresses)), routes=tuple(reversed(cfg.routes)))
    assert ka.render(cfg, WORK) == ka.render(shuffled, WORK)
    assert ka.render(cfg, WORK) != ka.render(_cfg(addresses=cfg.addresses[:2]), WORK)


def test_a_router_becomes_excluded_vips_and_virtual_routes() -> None:
    router = rt.Router(
        id="r1",
        interfaces=(rt.Interface("p1", "qr-aaaaaaaaaaa", "tapaaaaaaaaaaa", "fa:16:3e:00:00:01", 1450,
                                 ("198.18.5.1/24",)),),
        gateway=rt.Interface("p2", "qg-ggggggggggg", "tapggggggggggg", "fa:16:3e:00:00:02", 1500, ("198.18.9.10/24",)),
        gateway_ip="198.18.9.1",
        floating_ips=(rt.FloatingIp("198.18.9.20", "198.18.5.5"),),
        routes=(("198.18.30.0/24", "198.18.5.20"), ("198.18.30.0/24", "198.18.5.21"),
                ("198.18.31.0/24", "198.18.5.22")))
    cfg = ka.from_router(router, "qrouter-r1", "ha-0123456789a", 7, ka.primary_vip(7))
    assert cfg.addresses == (ka.Address("198.18.9.10/24", "qg-ggggggggggg"),
                             ka.Address("198.18.9.20/32", "qg-ggggggggggg"),
                             ka.Address("fe80::f816:3eff:fe00:2/64", "qg-ggggggggggg"),
                             ka.Address("198.18.5.1/24", "qr-aaaaaaaaaaa"),
                             ka.Address("fe80::f816:3eff:fe00:1/64", "qr-aaaaaaaaaaa"))
    assert cfg.routes == (ka.Route("0.0.0.0/0", ("198.18.9.1",), "qg-ggggggggggg"),
                          ka.Route("198.18.30.0/24", ("198.18.5.20", "198.18.5.21")),
                          ka.Route("198.18.31.0/24", ("198.18.5.22",)))
    assert "198.18.31.0/24 via 198.18.5.22 no_track" in ka.render(cfg, WORK)


def test_the_primary_vip_is_neutrons_address_vrid_of_the_first_free_24() -> None:
    assert ka.primary_vip(7) == "169.254.0.7/24"
    assert ka.primary_vip(7, ["169.254.192.0/18"]) == "169.254.0.7/24"
    assert ka.primary_vip(200, ["169.254.0.0/20"]) == "169.254.16.200/24"


@pytest.mark.parametrize("changes", [
    {"vrid": 0}, {"vrid": 256}, {"priority": 255}, {"priority": 0},
    {"advert_int": 0.005}, {"advert_int": 41.0}, {"advert_int": 0.333},
    {"ha_device": "ha x"}, {"ha_device": "ha-0123456789abcdef"}, {"primary_vip": "fe80::7/64"},
    {"primary_vip": "nonsense"}, {"router_id": "r 1"},
    {"addresses": (ka.Address("198.18.5.300/24", "qr-a"),)},
    {"routes": (ka.Route("198.18.30.0/24", ()),)},
])
def test_what_keepalived_would_refuse_is_refused_before(changes: dict[str, object]) -> None:
    with pytest.raises(DataplaneError):
        ka.render(_cfg(**changes), WORK)


def test_paths_keepalived_would_split_are_refused() -> None:
    with pytest.raises(DataplaneError, match="path"):
        ka.render(_cfg(), Path("/var/lib/my state/r1"))


def test_advert_interval_in_centiseconds() -> None:
    assert "advert_int 2\n" in ka.render(_cfg(advert_int=2.0), WORK)
    assert "advert_int 0.05\n" in ka.render(_cfg(advert_int=0.05), WORK)


def test_the_notify_script_records_each_transition_in_order_and_wakes_the_reader(tmp_path: Path) -> None:
    if shutil.which("logger") is None:
        pytest.skip("logger (util-linux) is missing")
    reader = ka.Notifications(tmp_path / "ha.sock")
    reader.open()
    try:
        workdir = tmp_path / "r1"
        workdir.mkdir()
        script = workdir / "notify.sh"
        script.write_text(ka.notify_script("r1", workdir, reader.path))
        script.chmod(0o755)
        fifo = tmp_path / "lines"  # what keepalived writes to the fifo
        fifo.write_text('INSTANCE "VR_7" BACKUP 50\nGROUP "G" MASTER 50\nINSTANCE "VR_7" MASTER 50\n'
                        'INSTANCE "VR_7" FAULT 50\nINSTANCE "VR_7" MASTER 50\n')
        subprocess.run([str(script), str(fifo)], check=True, timeout=30)
        assert (workdir / "state").read_text() == "master\n"
        recorded = ka.parse_transitions((workdir / "transitions").read_text())
        assert [t.state for t in recorded] == ["backup", "master", "fault", "master"]
        assert [t.at for t in recorded] == sorted(t.at for t in recorded)
        woken: list[tuple[str, str]] = []
        while len(woken) < 4:
            got = reader.read(5.0)
            assert got, f"only {woken} arrived"
            woken += got
        assert woken == [("r1", "backup"), ("r1", "master"), ("r1", "fault"), ("r1", "master")]
    finally:
        reader.close()
    assert not reader.path.exists()


def test_the_notify_script_carries_on_when_no_agent_listens(tmp_path: Path) -> None:
    if shutil.which("logger") is None:
        pytest.skip("logger (util-linux) is missing")
    script = tmp_path / "notify.sh"
    script.write_text(ka.notify_script("r1", tmp_path, tmp_path / "nobody.sock"))
    script.chmod(0o755)
    (tmp_path / "lines").write_text('INSTANCE "VR_7" BACKUP 50\nINSTANCE "VR_7" MASTER 50\n')
    subprocess.run([str(script), str(tmp_path / "lines")], check=True, timeout=30)
    assert (tmp_path / "state").read_text() == "master\n"


def test_transitions_file_lines_that_are_not_transitions_are_skipped() -> None:
    text = "1.5 backup\ngarbage\n2.5 master\nx master\n3.0 sideways\n"
    assert ka.parse_transitions(text) == [ka.Transition(1.5, "backup"), ka.Transition(2.5, "master")]


def test_keepalived_accepts_what_is_rendered(tmp_path: Path) -> None:
    """keepalived's own configuration check (-t), on devices that do not exist (dynamic_interfaces)."""
    if shutil.which("keepalived") is None or os.geteuid() != 0:
        pytest.skip("needs keepalived and root (its script security wants root-owned scripts)")
    (tmp_path / "notify.sh").write_text(ka.notify_script("r1", tmp_path, None))
    (tmp_path / "notify.sh").chmod(0o755)
    conf = tmp_path / "keepalived.conf"
    v6 = (ka.Address("2001:db8::1/64", "qr-aaaaaaaaaaa"), ka.Address("fe80::f816:3eff:fe00:1/64", "qr-aaaaaaaaaaa"))
    conf.write_text(ka.render(_cfg(addresses=(*_cfg().addresses, *v6)), tmp_path))
    proc = subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_an_instance_reads_its_primary_vip_back_from_its_configuration(tmp_path: Path) -> None:
    # the L3 agent counts an instance holding this address as active even when a notify was missed
    instance = ka.Keepalived(tmp_path)
    assert instance.primary() is None
    instance.conf.write_text(ka.render(_cfg(), tmp_path))
    assert instance.primary() == ("169.254.0.7", "ha-0123456789a")
