"""A timeout the user passes is checked where it is given, not on a worker."""

from __future__ import annotations

import math

import pytest

import wool


@wool.routine
async def _noop() -> None:
    return None


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan])
def test_unusable_timeouts_are_refused_where_they_are_given(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"), wool.timeout(seconds):
        pass
    with pytest.raises(ValueError, match="positive number of seconds"):
        _noop.options(timeout=seconds)


def test_usable_timeouts_are_kept() -> None:
    assert _noop.options(timeout=2.5).timeout == 2.5
    assert _noop.options().timeout is None
    with wool.timeout(None), wool.timeout(1.0):
        pass
