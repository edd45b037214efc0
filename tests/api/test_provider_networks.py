"""ML2 type drivers through the API: provider attributes, multi-provider segments, tenant allocation."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.support import servers


def _provider(net: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (net["provider:network_type"], net["provider:physical_network"], net["provider:segmentation_id"])


@pytest.fixture
def small(tmp_path: Path) -> Any:
    """A server with tiny ranges so exhaustion is quick to reach."""
    config = tmp_path / "ml2.toml"
    config.write_text('[ml2]\ntenant_network_types = ["vxlan"]\nvxlan_vni_ranges = ["100:102"]\n'
                      'network_vlan_ranges = ["physnet1:10:11", "physnet2"]\nflat_networks = ["physnet1", "ext"]\n')
    with servers.temporary_database("sqlite", tmp_path) as url, \
            servers.live_server(url, extra_env={"FERMION_CONFIG": str(config)}) as endpoint:
        yield httpx.Client(base_url=endpoint, headers={"X-Project-Id": "p1", "X-Roles": "admin"}, timeout=60)


def test_tenant_networks_get_a_vxlan_segment_hidden_from_members(api: Api) -> None:
    net = api.network(name="t")
    kind, physnet, vni = _provider(net)
    assert (kind, physnet) == ("vxlan", None) and 1000 <= vni <= 1999
    assert net["mtu"] == 1450
    member = api.as_("p2")
    mine = member.network(name="mine")
    assert "provider:network_type" not in mine and "segments" not in mine
    shown = member.get(f"/v2.0/networks/{mine['id']}").json()["network"]
    assert "provider:segmentation_id" not in shown
    r = member.post("/v2.0/networks", json={"network": {"provider:network_type": "vxlan"}})
    assert r.status_code == 403


def test_provider_flat_vlan_and_local(api: Api) -> None:
    flat = api.network(**{"provider:network_type": "flat", "provider:physical_network": "physnet1"})
    assert _provider(flat) == ("flat", "physnet1", None) and flat["mtu"] == 1500
    vlan = api.network(**{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                          "provider:segmentation_id": 101})
    assert _provider(vlan) == ("vlan", "physnet1", 101)
    local = api.network(**{"provider:network_type": "local"})
    assert _provider(local) == ("local", None, None)
    gre = api.network(**{"provider:network_type": "gre", "provider:segmentation_id": 77})
    assert _provider(gre) == ("gre", None, 77) and gre["mtu"] == 1458
    listed = api.get("/v2.0/networks?provider:network_type=vlan").json()["networks"]
    assert [n["id"] for n in listed] == [vlan["id"]]


@pytest.mark.parametrize("attrs,kind", [
    ({"provider:network_type": "flat", "provider:physical_network": "physnet1"}, "FlatNetworkInUse"),
    ({"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5},
     "VlanIdInUse"),
    ({"provider:network_type": "vxlan", "provider:segmentation_id": 5000}, "TunnelIdInUse"),
])
def test_a_segment_is_used_once(api: Api, attrs: dict[str, Any], kind: str) -> None:
    api.network(**attrs)
    r = api.post("/v2.0/networks", json={"network": attrs})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == kind


@pytest.mark.parametrize("attrs", [
    {"provider:network_type": "warp"},
    {"provider:network_type": "flat"},
    {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 4095},
    {"provider:network_type": "vxlan", "provider:physical_network": "physnet1"},
    {"provider:network_type": "vxlan", "provider:segmentation_id": 2**24},
    {"provider:network_type": "local", "provider:segmentation_id": 3},
    {"provider:network_type": "flat", "provider:physical_network": "p", "provider:segmentation_id": 3},
    {"provider:network_type": "vxlan", "segments": [{"provider:network_type": "vxlan"}]},
])
def test_invalid_provider_requests_are_400(api: Api, attrs: dict[str, Any]) -> None:
    r = api.post("/v2.0/networks", json={"network": attrs})
    assert r.status_code == 400, r.text
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_multi_provider_segments_and_release(api: Api) -> None:
    segs = [{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 7},
            {"provider:network_type": "vxlan", "provider:segmentation_id": 4242}]
    vlan_only: dict[str, Any] = segs[0]
    net = api.network(segments=segs)
    assert net["segments"] == [{**s, "provider:physical_network": s.get("provider:physical_network")} for s in segs]
    assert net["provider:network_type"] is None
    assert api.post("/v2.0/networks", json={"network": vlan_only}).status_code == 409
    assert api.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    again = api.network(**vlan_only)  # released with the network
    assert _provider(again) == ("vlan", "physnet1", 7)


def test_physnets_and_ranges_come_from_configuration(small: httpx.Client) -> None:
    c = small
    r = c.post("/v2.0/networks", json={"network": {"provider:network_type": "flat",
                                                    "provider:physical_network": "physnet9"}})
    assert r.status_code == 400
    r = c.post("/v2.0/networks", json={"network": {"provider:network_type": "vlan",
                                                    "provider:physical_network": "physnet2"}})
    assert r.status_code == 503  # physnet2 has no tenant range: nothing to allocate from
    vlans = [c.post("/v2.0/networks", json={"network": {"provider:network_type": "vlan",
                                                         "provider:physical_network": "physnet1"}}) for _ in range(3)]
    assert [v.status_code for v in vlans] == [201, 201, 503]
    assert sorted(v.json()["network"]["provider:segmentation_id"] for v in vlans[:2]) == [10, 11]


def test_tenant_vni_exhaustion_is_503_and_concurrency_never_duplicates(small: httpx.Client) -> None:
    endpoint = str(small.base_url)

    def create(i: int) -> httpx.Response:
        with httpx.Client(base_url=endpoint, headers={"X-Project-Id": "p1", "X-Roles": "member"}, timeout=60) as c:
            return c.post("/v2.0/networks", json={"network": {"name": f"n{i}"}})

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(create, range(6)))
    assert Counter(r.status_code for r in responses) == {201: 3, 503: 3}
    refused = [r.json()["NeutronError"]["type"] for r in responses if r.status_code == 503]
    assert set(refused) == {"NoNetworkAvailable"}
    vnis = sorted(small.get(f"/v2.0/networks/{r.json()['network']['id']}").json()["network"]
                  ["provider:segmentation_id"] for r in responses if r.status_code == 201)
    assert vnis == [100, 101, 102]
    victim = next(r.json()["network"]["id"] for r in responses if r.status_code == 201)
    assert small.delete(f"/v2.0/networks/{victim}").status_code == 204
    assert create(99).status_code == 201


def test_bad_ml2_configuration_is_rejected(tmp_path: Path) -> None:
    from fermion.config import settings as cfg

    bad = tmp_path / "bad.toml"
    bad.write_text('[ml2]\ntenant_network_types = ["vxlan"]\nvxlan_vni_ranges = ["5:1"]\n')
    with pytest.raises(cfg.ConfigError, match="VXLAN VNI range"):
        cfg.load(bad, env={})
    bad.write_text('[ml2]\ntenant_network_types = ["warp"]\n')
    with pytest.raises(cfg.ConfigError, match="unknown network type"):
        cfg.load(bad, env={})
