from pathlib import Path

import pytest

from fermion.config import settings as cfg


def test_defaults_are_all_in_one() -> None:
    s = cfg.load(env={})
    assert (s.server.host, s.server.port, s.auth.strategy) == ("127.0.0.1", 9696, "noauth")
    assert s.database_url.startswith("sqlite:///")


def test_file_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "f.toml"
    f.write_text('[server]\nport = 9797\n[database]\nurl = "postgresql://x@h/db"\n[quotas]\nport = 7\n')
    s = cfg.load(f, env={})
    assert (s.server.port, s.database_url, s.quotas.port) == (9797, "postgresql://x@h/db", 7)
    s = cfg.load(f, env={"FERMION_DATABASE_URL": "mysql://root@h/db"})
    assert s.database_url == "mysql://root@h/db"


def test_every_quota_default_is_a_key(tmp_path: Path) -> None:
    f = tmp_path / "f.toml"
    f.write_text('[quotas]\nrouter = 3\nfloatingip = -1\nsecurity_group = 4\nsecurity_group_rule = 40\n')
    q = cfg.load(f, env={}).quotas
    assert (q.network, q.router, q.floatingip, q.security_group, q.security_group_rule) == (100, 3, -1, 4, 40)
    f.write_text('[quotas]\nrouter = -2\n')
    with pytest.raises(cfg.ConfigError, match="quotas.router"):
        cfg.load(f, env={})


def test_logging_and_metrics_keys(tmp_path: Path) -> None:
    f = tmp_path / "f.toml"
    f.write_text('[logging]\nlevel = "debug"\nformat = "json"\n[server]\nmetrics_public = false\n'
                 '[agents]\nmetrics_address = "127.0.0.1:9110"\n')
    s = cfg.load(f, env={})
    assert (s.logging.level, s.logging.format, s.server.metrics_public, s.agents.metrics_address) == (
        "debug", "json", False, "127.0.0.1:9110")
    assert cfg.load(f, env={"FERMION_LOG_LEVEL": "WARNING"}).logging.level == "warning"
    defaults = cfg.load(env={})
    assert (defaults.logging.level, defaults.logging.format, defaults.server.metrics_public,
            defaults.agents.metrics_address) == ("info", "text", True, "")


def test_dns_domain(tmp_path: Path) -> None:
    assert cfg.load(env={}).network.dns_domain == "openstacklocal."
    f = tmp_path / "f.toml"
    f.write_text('[network]\ndns_domain = "example.org"\n')
    assert cfg.load(f, env={}).network.dns_domain == "example.org"  # the trailing dot is implied, as in Neutron
    f.write_text('[network]\ndns_domain = ""\n')
    assert cfg.load(f, env={}).network.dns_domain == ""


@pytest.mark.parametrize("text,fragment", [
    ("[server]\nprot = 1\n", "unknown key(s) in [server]: prot"),
    ("[srever]\n", "unknown section(s): srever"),
    ("[server]\nport = 'x'\n", "server.port must be of type int"),
    ("[auth]\nstrategy = 'ldap'\n", "auth.strategy"),
    ("[auth]\nstrategy = 'keystone'\n", "needs keystone.auth_url"),
    ("[server\n", "config file"),
    ("[logging]\nlevel = 'loud'\n", "logging.level must be debug, info, warning, error or critical"),
    ("[logging]\nformat = 'xml'\n", "logging.format must be 'text' or 'json'"),
    ("[agents]\nmetrics_address = '9110'\n", "agents.metrics_address: metrics address '9110' is not HOST:PORT"),
    ("[server]\nmetrics_public = 'no'\n", "server.metrics_public must be of type bool"),
    ("[network]\ndns_domain = 'bad_domain.org'\n", "network.dns_domain: 'bad_domain.org.' not a valid PQDN or FQDN"),
    ("[network]\ndns_domian = 'example.org'\n", "unknown key(s) in [network]: dns_domian"),
    ("[l3]\nconntrack_helpers = ['ftp']\n", "[l3] conntrack helper 'ftp' is not 'helper:tcp' or 'helper:udp'"),
    ("[l3]\nconntrack_helpers = ['ftp:sctp']\n", "[l3] conntrack helper 'ftp:sctp'"),
    ("[l3]\nmax_l3_agents_per_router = 1\n", "[l3] max_l3_agents_per_router 1 must be 0 (every agent) or at least 2"),
    ("[l3]\nl3_ha_net_cidr = '169.254.192.1/18'\n", "[l3] l3_ha_net_cidr '169.254.192.1/18' is not a valid IPv4"),
    ("[l3]\nl3_ha_net_cidr = '2001:db8::/64'\n", "[l3] l3_ha_net_cidr '2001:db8::/64' is not a valid IPv4"),
    ("[l3]\nha = 'yes'\n", "l3.ha must be of type bool"),
])
def test_bad_files_are_rejected_with_the_reason(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(cfg.ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        cfg.load(f, env={})


def test_conntrack_helpers_key(tmp_path: Path) -> None:
    assert "ftp:tcp" in cfg.load(env={}).l3.conntrack_helpers
    f = tmp_path / "f.toml"
    f.write_text('[l3]\nconntrack_helpers = ["tftp:udp", "sip:udp", "sip:tcp"]\n')
    assert cfg.load(f, env={}).l3.conntrack_helpers == ("tftp:udp", "sip:udp", "sip:tcp")


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fermion.cli.main import main

    good = tmp_path / "good.toml"
    good.write_text("[server]\nport = 9000\n")
    assert main(["check-config", "--config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nnope = 1\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_l3_agent_mode_takes_neutron_s_names(tmp_path: Path) -> None:
    f = tmp_path / "fermion.toml"
    f.write_text('[l3]\nagent_mode = "dvr_snat"\n')
    assert cfg.load(f, env={}).validate().l3.agent_mode == "dvr_snat"
    assert cfg.Settings().l3.agent_mode == "legacy"
    with pytest.raises(cfg.ConfigError, match="l3.agent_mode"):
        cfg.Settings().replace("l3", agent_mode="distributed").validate()
