"""Picking free values from inclusive integer ranges (IP addresses, segmentation ids)."""

from __future__ import annotations

from collections.abc import Sequence


def first_free(ranges: Sequence[tuple[int, int]], taken: set[int], want: int) -> list[int]:
    """Up to `want` free values from the start of the ranges: O(taken + want), not O(range size)."""
    out: list[int] = []
    for start, end in ranges:
        value = start
        while value <= end and len(out) < want:
            if value not in taken:
                out.append(value)
            value += 1
        if len(out) >= want:
            break
    return out
