from tests.conftest import Api


def test_network_subnet_port_roundtrip(api: Api) -> None:
    net = api.network(name="n1")
    sub = api.subnet(net["id"], "10.1.0.0/24")
    port = api.port(net["id"], name="p1")
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    r = api.get(f"/v2.0/networks/{net['id']}")
    assert r.json()["network"]["subnets"] == [sub["id"]]
    assert r.headers["x-openstack-request-id"].startswith("req-")
