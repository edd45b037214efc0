"""Live migration through /ports/{id}/bindings (binding-extended), with real packets: the target host's agent
wires the port only once its binding is activated, and the source host's agent lets it go."""

from __future__ import annotations

import re

from fermion.dataplane import naming, veth
from fermion.lab import instances
from tests.dataplane.lab import Lab


def _attached(lab: Lab, host: str, port_id: str) -> bool:
    return re.search(rf"{naming.tap(port_id)}@\S+ .*master ", lab.links(host)) is not None


def test_a_port_moves_to_another_host_by_binding_activation(lab: Lab) -> None:
    lab.network("blue", "10.23.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    vm2 = lab.boot("blue", "compute2", "vm2")
    assert lab.ping("vm1", "vm2")
    pid, http = vm2.port_id, lab.api.http
    port = lab.api._ok(http.get(f"/v2.0/ports/{pid}"))["port"]

    # the target host gets an inactive binding, and the instance's tap appears there (as Nova plugs it)
    created = lab.api._ok(http.post(f"/v2.0/ports/{pid}/bindings", json={"binding": {"host": "network1"}}))
    assert created["binding"]["status"] == "INACTIVE"
    veth.delete(lab.host_ns("compute2"), naming.tap(pid))  # the instance leaves its source host
    mtu = lab.api.network("blue")["mtu"]
    veth.plug(lab.host_ns("network1"), naming.tap(pid), vm2.netns, "eth0", port["mac_address"], mtu,
              addresses=[f"{vm2.ip}/24"])
    lab.wait(lambda: not _attached(lab, "compute2", pid), what="nothing left on the source host")
    assert not _attached(lab, "network1", pid)  # an inactive binding is not wired
    assert not lab.ping("vm1", "vm2", count=1)

    activated = lab.api._ok(http.put(f"/v2.0/ports/{pid}/bindings/network1/activate"))
    assert activated["binding"]["status"] == "ACTIVE"
    lab.wait(lambda: _attached(lab, "network1", pid), what="tap attached on the target host")
    instances.wait_port_status(lab.api, pid, "ACTIVE")
    lab.wait(lambda: lab.ping("vm1", "vm2", count=1), what="vm1 reaches vm2 on its new host")
    assert lab.ping("vm2", "vm1")

    # the source binding, now inactive, goes away as Nova removes it after the migration
    bindings = lab.api._ok(http.get(f"/v2.0/ports/{pid}/bindings"))["bindings"]
    assert {b["host"]: b["status"] for b in bindings} == {"network1": "ACTIVE", "compute2": "INACTIVE"}
    assert http.delete(f"/v2.0/ports/{pid}/bindings/compute2").status_code == 204
    assert lab.ping("vm1", "vm2")
