from fermion.allocation import first_free


def test_first_free_skips_taken_values_across_ranges() -> None:
    assert first_free([(1, 3), (10, 12)], {1, 2, 10}, 3) == [3, 11, 12]


def test_first_free_stops_at_want_and_when_all_are_taken() -> None:
    assert first_free([(0, 1_000_000)], set(), 4) == [0, 1, 2, 3]
    assert first_free([(5, 6)], {5, 6}, 4) == []
