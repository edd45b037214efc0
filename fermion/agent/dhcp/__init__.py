"""The DHCP agent."""
