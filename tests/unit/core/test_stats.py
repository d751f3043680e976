"""Histogram buckets and counter snapshots."""

import random

import pytest

from wool.stats import BUCKETS, Counters, Histogram, _bucket, _bucket_floor


def test_bucket_bounds_round_trip() -> None:
    for index in range(BUCKETS - 1):
        floor = _bucket_floor(index)
        assert _bucket(floor) == index
        assert _bucket(_bucket_floor(index + 1) - 1) == index


def test_percentiles_are_within_one_bucket() -> None:
    rng = random.Random(7)
    values = sorted(int(rng.lognormvariate(11, 1)) for _ in range(20_000))
    hist = Histogram()
    for v in values:
        hist.add(v)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert exact <= hist.percentile_ns(q) <= exact * 1.25
    assert hist.summary().count == len(values)
    assert hist.summary().max_ms == pytest.approx(values[-1] / 1e6)


def test_merge_and_sparse_round_trip() -> None:
    a, b = Histogram(), Histogram()
    for v in (1_000, 2_000, 40_000):
        a.add(v)
    for v in (3_000, 5_000_000):
        b.add(v)
    merged = Histogram()
    merged.merge(a)
    merged.merge(b)
    again = Histogram.from_sparse(merged.sparse(), merged.total_ns, merged.max_ns)
    assert again.total == 5
    assert again.summary() == merged.summary()


def test_counters_snapshot_derives_in_flight() -> None:
    c = Counters()
    c.started = 10
    c.completed, c.failed, c.cancelled = 5, 2, 1
    snap = c.snapshot()
    assert snap.in_flight == 2 == c.in_flight
    assert snap.finished == 8
