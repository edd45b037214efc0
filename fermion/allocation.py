"""Picking free values from inclusive integer ranges (IP addresses, segmentation ids)."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random


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


def pick_low_free(ranges: Sequence[tuple[int, int]], taken: set[int], rng: Random, window: int = 256) -> int | None:
    """A random free value among roughly the lowest `window` free ones, or None when all are taken.

    Random, so that concurrent allocators rarely collide; low, as Neutron hands out addresses. A few guesses
    in [start, start + len(taken) + window) usually hit, which skips building the candidate list."""
    start, end = ranges[0]
    top = min(end, start + len(taken) + window - 1)
    for _ in range(4):
        value = rng.randint(start, top)
        if value not in taken:
            return value
    free = first_free(ranges, taken, window)
    return rng.choice(free) if free else None
