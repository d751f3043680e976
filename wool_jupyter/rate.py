"""One sliding-window rate, shared by the mesh views and the progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["windowed_rate"]

_P = TypeVar("_P")


def windowed_rate(
    points: Sequence[tuple[float, _P]],
    count: Callable[[_P], int],
    span: float,
    min_dt: float,
) -> float | None:
    """Events per second between the newest point and the oldest one within ``span``.

    ``points`` are ``(time, sample)`` pairs, oldest first; ``count`` reads the
    running total from a sample. If the oldest point within ``span`` is less
    than ``min_dt`` before the newest, an older point is used instead, and
    with none at least ``min_dt`` older the answer is None, so two reads a
    millisecond apart never show as a wild spike. Never negative.
    """
    if len(points) < 2:
        return None
    t1, newest = points[-1]
    base = len(points) - 2
    while base > 0 and (points[base - 1][0] >= t1 - span or t1 - points[base][0] < min_dt):
        base -= 1
    t0, oldest = points[base]
    if t1 - t0 < min_dt:
        return None
    return max(0.0, (count(newest) - count(oldest)) / (t1 - t0))
