"""Trunk-group saturation in bounded series (services/saturation.py), rule A1's ops view."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.saturation import BANDS, band, summarise


@pytest.mark.rule("A1")
@pytest.mark.parametrize(
    ("in_use", "trunks", "expected"),
    [(0, 3, "idle"), (1, 3, "lt50"), (2, 4, "lt80"), (3, 4, "lt80"), (4, 5, "lt100"),
     (3, 3, "full"), (4, 3, "full"), (1, 0, "full"), (0, 0, "idle")],
)  # fmt: skip
def test_band_edges(in_use: int, trunks: int, expected: str) -> None:
    assert band(in_use, trunks) == expected


def test_top_is_busiest_first_and_skips_idle() -> None:
    bands, top = summarise(
        [("a", 1, 10), ("b", 3, 3), ("c", 0, 2), ("d", 8, 10), ("e", 2, 2)], top=3
    )
    assert bands == {"idle": 1, "lt50": 1, "lt80": 0, "lt100": 1, "full": 2}
    assert top == [("b", 1.0), ("e", 1.0), ("d", 0.8)]


usage = st.lists(
    st.tuples(st.text(min_size=1, max_size=5), st.integers(0, 50), st.integers(0, 50)), max_size=60
)


@given(usage, st.integers(0, 20))
def test_series_stay_bounded_and_every_group_is_counted(rows, top: int) -> None:
    bands, busiest = summarise(rows, top)
    assert set(bands) == set(BANDS)
    assert sum(bands.values()) == len(rows)
    assert len(busiest) <= top
    assert all(0 < ratio <= 1 for _, ratio in busiest)
    assert [r for _, r in busiest] == sorted((r for _, r in busiest), reverse=True)
