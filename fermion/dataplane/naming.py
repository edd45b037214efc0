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


def router_namespace(router_id: str, host_netns: str | None) -> str:
    """qrouter-<router>, prefixed with the emulated host's namespace like dhcp_namespace."""
    return f"{host_netns}-qrouter-{router_id}" if host_netns else f"qrouter-{router_id}"


def router_interface(port_id: str) -> str:
    return "qr-" + port_id[:11]


def router_gateway(port_id: str) -> str:
    return "qg-" + port_id[:11]


def ha_device(port_id: str) -> str:
    """An HA router's port on its HA network: keepalived's VRRP runs over it."""
    return "ha-" + port_id[:11]
