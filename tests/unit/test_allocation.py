import random

from fermion.allocation import first_free, pick_low_free


def test_first_free_skips_taken_values_across_ranges() -> None:
    assert first_free([(1, 3), (10, 12)], {1, 2, 10}, 3) == [3, 11, 12]


def test_first_free_stops_at_want_and_when_all_are_taken() -> None:
    assert first_free([(0, 1_000_000)], set(), 4) == [0, 1, 2, 3]
    assert first_free([(5, 6)], {5, 6}, 4) == []


def test_pick_low_free_stays_low_and_never_returns_a_taken_value() -> None:
    rng = random.Random(1)
    taken = set(range(100, 150))
    picks = {pick_low_free([(100, 100_000)], taken, rng, window=16) for _ in range(500)}
    assert picks and not picks & taken
    assert max(picks) < 100 + len(taken) + 16  # among the lowest free values, not anywhere in the range


def test_pick_low_free_moves_on_to_later_ranges_and_reports_exhaustion() -> None:
    rng = random.Random(2)
    assert pick_low_free([(1, 3), (10, 10)], {1, 2, 3}, rng) == 10
    assert pick_low_free([(1, 3)], {1, 2, 3}, rng) is None
