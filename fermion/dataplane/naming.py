"""Kernel object names, as Neutron names them (operators recognise them); all fit 15 characters."""

from __future__ import annotations

MARKER = "fermion"  # link alias on every device we create: reconcile never touches anything without it


def bridge(network_id: str) -> str:
    return "brq" + network_id[:11]


def tap(port_id: str) -> str:
    return "tap" + port_id[:11]


def vxlan(vni: int) -> str:
    return f"vxlan-{vni}"


def dhcp_device(port_id: str) -> str:
    return "ns-" + port_id[:11]


def dhcp_namespace(network_id: str, host_netns: str | None) -> str:
    """qdhcp-<network>; an emulated host's namespaces carry its name first so the lab can find them."""
    return f"{host_netns}-qdhcp-{network_id}" if host_netns else f"qdhcp-{network_id}"


def router_namespace(router_id: str, host_netns: str | None, kind: str = "qrouter") -> str:
    """qrouter-<router>, prefixed with the emulated host's namespace like dhcp_namespace. kind "snat": a
    distributed router's central SNAT part."""
    return f"{host_netns}-{kind}-{router_id}" if host_netns else f"{kind}-{router_id}"


def fip_namespace(network_id: str, host_netns: str | None) -> str:
    """fip-<external network>: a DVR host's floating-IP namespace, prefixed like the others."""
    return f"{host_netns}-fip-{network_id}" if host_netns else f"fip-{network_id}"


def router_interface(port_id: str) -> str:
    return "qr-" + port_id[:11]


def router_gateway(port_id: str) -> str:
    return "qg-" + port_id[:11]


def ha_device(port_id: str) -> str:
    """An HA router's port on its HA network: keepalived's VRRP runs over it."""
    return "ha-" + port_id[:11]


def snat_device(port_id: str) -> str:
    """A distributed router's SNAT port (in snat-<router>), one per internal subnet."""
    return "sg-" + port_id[:11]


def fip_gateway(port_id: str) -> str:
    """A DVR host's floating-IP gateway port on an external network (in fip-<network>)."""
    return "fg-" + port_id[:11]


def rfp(router_id: str) -> str:
    """The local copy's end of its link to the floating-IP namespace."""
    return "rfp-" + router_id[:11]


def fpr(router_id: str) -> str:
    """The floating-IP namespace's end of a local copy's link."""
    return "fpr-" + router_id[:11]
