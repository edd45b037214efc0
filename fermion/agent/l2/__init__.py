"""The Linux-bridge L2 agent."""
