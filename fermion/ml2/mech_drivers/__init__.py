"""Mechanism drivers: which agent on a host can carry which segment."""
