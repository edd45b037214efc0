"""Floating IP pools (floatingip-pools): read-only, one per IPv4 subnet of an external network."""

from __future__ import annotations

from fermion.resources.base import Extension

FIELDS = ("subnet_id", "subnet_name", "network_id", "cidr", "project_id", "tenant_id")
FLOATINGIP_POOLS = Extension("floatingip-pools", "Floating IP Pools Extension", "Provides a floating IP pools API.")
