"""Large buffers travel out of band, come back as views of the received memory, and are
measured against the payload limit before anything is copied."""

from __future__ import annotations

import time
from typing import Any

import pytest

import wool
from wool import codec, tuning
from wool.protocol import frames

BIG = 1 << 20


def _received(payload: bytes | frames.Parts) -> bytearray:
    """A payload received in one piece, writable: what an assembler holds when it could
    not read the head (the per-buffer case is in ``test_chunks.py``)."""
    return bytearray(b"".join(payload.parts) if isinstance(payload, frames.Parts) else payload)


def _round_trip(value: object) -> Any:
    return codec.decode_value(_received(codec.encode_value(value)))


def _offsets(payload: codec.Buffers) -> list[int]:
    """Where each out-of-band buffer starts in the joined payload."""
    starts, offset = [], 0
    for index, part in enumerate(payload.parts):
        if index >= 2 and len(part) >= codec.LARGE:
            starts.append(offset)
        offset += len(part)
    return starts


def test_small_values_and_calls_stay_plain_bytes() -> None:
    assert codec.encode_call("f", (), {}) == b""
    assert codec.encode_value(None) == b""
    for value in (7, "text", b"x" * 1000, [1, 2.5, "a"], {"k": bytearray(10)}):
        assert type(codec.encode_value(value)) is bytes
    assert type(codec.encode_call("f", (1, b"x" * 1000), {"k": [2]})) is bytes


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_large_bytes_and_bytearray_go_out_of_band_and_round_trip(kind: type) -> None:
    value = kind(range(256)) * (BIG // 256 + 3)
    payload = codec.encode_value(value)
    assert isinstance(payload, codec.Buffers) and isinstance(payload, frames.Parts)
    assert any(part is not None and len(part) == len(value) for part in payload.parts)
    assert all(offset % 64 == 0 for offset in _offsets(payload)) and _offsets(payload)
    back = codec.decode_value(_received(payload))
    assert type(back) is kind and back == value


def test_a_large_memoryview_comes_back_as_a_view_of_the_received_memory() -> None:
    source = memoryview(bytearray(range(256)) * (BIG // 256)).cast("I")
    received = _received(codec.encode_value(source))
    back = codec.decode_value(received)
    assert isinstance(back, memoryview) and back.tobytes() == source.tobytes()
    assert (back.format, back.shape) == ("I", source.shape)
    assert back.obj is received and not back.readonly  # a view, not a copy
    frozen = codec.decode_value(_received(codec.encode_value(memoryview(b"r" * BIG))))
    assert frozen.readonly and frozen.tobytes() == b"r" * BIG


def test_call_arguments_of_every_kind_round_trip_byte_exact() -> None:
    blob, array, view = b"b" * BIG, bytearray(b"a" * BIG), memoryview(b"v" * (BIG + 1))
    payload = codec.encode_call("f", (blob, 3), {"array": array, "view": view, "n": [b"n" * BIG]})
    assert isinstance(payload, codec.Buffers)
    args, kwargs = codec.decode_call(_received(payload))
    assert args == (blob, 3) and kwargs["array"] == array and kwargs["n"] == [b"n" * BIG]
    assert kwargs["view"].tobytes() == view.tobytes()


def test_decoders_accept_bytes_memoryview_and_bytearray() -> None:
    value = {"a": b"x" * BIG, "b": [1, 2]}
    joined = bytes(codec.encode_value(value))
    for form in (joined, memoryview(joined), bytearray(joined)):
        assert codec.decode_value(form) == value
    small = codec.encode_call("f", (1,), {"k": 2})
    for form in (small, memoryview(small), bytearray(small)):
        assert codec.decode_call(form) == ((1,), {"k": 2})


def test_a_large_payload_schedules_a_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    noted: list[int] = []
    monkeypatch.setattr(tuning, "note_large_payload", lambda: noted.append(1))
    codec.decode_value(_received(codec.encode_value(b"x" * BIG)))
    assert len(noted) == 2  # once encoding, once decoding
    codec.decode_value(codec.encode_value(b"x" * 100))
    assert len(noted) == 2


@pytest.mark.parametrize("order", ["C", "F"])
def test_numpy_arrays_are_views_of_the_payload_writable_and_aligned(order: str) -> None:
    np = pytest.importorskip("numpy")
    array = np.asfortranarray(np.arange(512 * 300, dtype="f8").reshape(512, 300))
    if order == "C":
        array = np.ascontiguousarray(array)
    payload = codec.encode_value(array)
    assert isinstance(payload, codec.Buffers)
    assert all(offset % 64 == 0 for offset in _offsets(payload)) and _offsets(payload)
    received = _received(payload)
    back = codec.decode_value(received)
    assert back.tobytes(order="A") == array.tobytes(order="A") and back.shape == array.shape
    assert back.flags.writeable and back.flags.aligned
    assert np.shares_memory(back, np.frombuffer(received, dtype="u1"))


def test_a_non_contiguous_numpy_slice_round_trips() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(1024 * 512, dtype="i4").reshape(1024, 512)[::3, 1::2]
    back = _round_trip(array)
    assert back.tobytes() == array.tobytes() and back.shape == array.shape


def test_a_pandas_frame_round_trips_with_its_columns_out_of_band() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": np.arange(100_000, dtype="f8"), "y": np.arange(100_000) % 7})
    payload = codec.encode_value(frame)
    assert isinstance(payload, codec.Buffers)
    pd.testing.assert_frame_equal(codec.decode_value(_received(payload)), frame)


def test_an_argument_over_the_limit_is_named_with_its_size() -> None:
    with pytest.raises(wool.PayloadTooLarge) as caught:
        codec.encode_call("f", (1,), {"data": b"x" * (3 << 20)}, limit=2 << 20)
    message = str(caught.value)
    assert message == (
        "f(): keyword argument 'data' (bytes) is 3.0 MiB, over this pool's max_payload of 2.0 MiB"
    )
    assert isinstance(caught.value, wool.SerializationError)
    with pytest.raises(wool.PayloadTooLarge, match=r"^a bytearray value is 3\.0 MiB, over"):
        codec.encode_value(bytearray(3 << 20), limit=2 << 20)
    with pytest.raises(wool.PayloadTooLarge, match=r"the largest is positional argument 1"):
        codec.encode_call("f", (b"a" * (BIG + 1), b"b" * (BIG + 2)), {}, limit=2 << 20)


def test_the_default_limit_and_the_message_limit_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_PAYLOAD", 1 << 20)
    with pytest.raises(wool.PayloadTooLarge, match=r"positional argument 0 \(bytes\) is 2\.0 MiB"):
        codec.encode_call("f", (b"x" * (2 << 20),), {})
    monkeypatch.setattr(frames, "LIMIT", 1 << 19)
    with pytest.raises(wool.PayloadTooLarge, match="one payload can carry"):
        codec.encode_value(b"x" * (1 << 20), limit=10 << 20)


def test_a_huge_array_is_refused_fast_without_being_copied() -> None:
    np = pytest.importorskip("numpy")
    huge = np.zeros(3 << 30, dtype="u1")  # pages are mapped lazily: nothing is touched
    started = time.perf_counter()
    with pytest.raises(wool.PayloadTooLarge) as caught:
        codec.encode_call("f", (huge,), {}, limit=2 << 30)
    elapsed = time.perf_counter() - started
    assert str(caught.value) == (
        "f(): positional argument 0 (ndarray) is 3.0 GiB, over this pool's max_payload of 2.0 GiB"
    )
    assert elapsed < 0.5, f"refusing took {elapsed:.3f}s"


def test_unpicklable_arguments_are_still_named() -> None:
    import threading

    with pytest.raises(wool.SerializationError, match=r"^f\(\): positional argument 1 \(lock\)"):
        codec.encode_call("f", (b"x" * BIG, threading.Lock()), {})


def test_an_array_inside_a_received_message_arrives_writable_and_on_its_own_memory() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(20_000, dtype=np.float64)  # 160 KB: out of band, too small to chunk
    message = memoryview(bytes(codec.encode_call("f", (array,), {})))  # read-only, as received
    (back,), _ = codec.decode_call(message)
    assert back.flags.writeable and np.array_equal(back, array)
    back += 1  # in place, as with an array pickled in band
    assert not np.shares_memory(back, np.frombuffer(message, dtype=np.uint8))


def test_a_buffer_passed_twice_travels_once() -> None:
    blob, other = b"a" * BIG, bytearray(b"b" * BIG)
    once = len(codec.encode_call("f", (blob,), {}))
    assert len(codec.encode_call("f", (blob, blob), {"again": blob})) == once
    args, kwargs = codec.decode_call(
        _received(codec.encode_call("f", ([blob, other, blob] * 400, other), {}))
    )
    assert args[0][0] is args[0][2] and args[0][1] is args[1]  # as passed: one object each
    assert args[0][0] == blob and args[1] == other and kwargs == {}
