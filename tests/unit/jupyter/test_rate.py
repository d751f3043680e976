"""The sliding-window rate behind the mesh views' throughput and the progress bar."""

from __future__ import annotations

import pytest

from wool_jupyter.rate import windowed_rate


def rate(points: list[tuple[float, int]], span: float = 5.0, min_dt: float = 0.2) -> float | None:
    return windowed_rate(points, int, span, min_dt)


def test_needs_two_points_far_enough_apart() -> None:
    assert rate([]) is None
    assert rate([(0.0, 0)]) is None
    assert rate([(0.0, 0), (0.1, 50)]) is None
    assert rate([(0.0, 0), (0.5, 50)]) == pytest.approx(100.0)


def test_measures_from_the_oldest_point_within_the_span() -> None:
    points = [(float(t), 10 * t if t <= 10 else 100 + 30 * (t - 10)) for t in range(21)]
    assert rate(points, span=5.0) == pytest.approx(30.0)
    assert rate(points, span=100.0) == pytest.approx((400 - 0) / 20)


def test_reaches_back_past_a_point_too_close_to_the_newest() -> None:
    assert rate([(0.0, 0), (10.0, 100), (10.05, 110)], span=0.01) == pytest.approx(110 / 10.05)


def test_never_negative() -> None:
    assert rate([(0.0, 10), (1.0, 0)]) == 0.0


def test_reads_counts_through_the_key() -> None:
    points = [(0.0, {"n": 0}), (2.0, {"n": 8})]
    assert windowed_rate(points, lambda s: s["n"], 5.0, 0.2) == pytest.approx(4.0)
