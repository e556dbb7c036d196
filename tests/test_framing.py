"""Framing: chunks of any size become fixed frames on a grid from sample 0, with exact positions."""

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import twin_or_compiled

from parley.core import codecs, framing

NO_EXTENSIONS = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"


@pytest.fixture(params=["py", "c"])
def impl(request):
    """The plain-Python twin and the compiled framer, run through the same tests."""
    return twin_or_compiled(request, "_framing_py", "_framing_c")


def _pop_all(framer):
    frames, positions = [], []
    out = np.empty(framer.frame_size, np.float32)
    while True:
        position = framer.next_frame_position
        if not framer.pop_into(out):
            return frames, positions
        frames.append(out.copy())
        positions.append(position)


def _ramp(n):
    return (np.arange(n) % 30000 / 32768).astype(np.float32)


def test_compiled_framer_is_built_with_its_c_types():
    """The build must neither fall back to the .py source nor compile it without its .pxd."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _framing_c

    assert framing.COMPILED
    assert framing.Framer is _framing_c.Framer
    assert not hasattr(_framing_c.Framer(8000), "__dict__"), "compiled without _framing_c.pxd: a plain Python class"


@pytest.mark.parametrize(("sample_rate", "frame_ms"), list(itertools.product((8000, 16000), (10, 20, 30))))
def test_chunks_of_any_size_become_fixed_frames_with_their_positions(impl, sample_rate, frame_ms):
    framer = impl.Framer(sample_rate, frame_ms)
    size = sample_rate * frame_ms // 1000
    x = _ramp(7 * size + 13)
    bounds = [0, 0, 1, 2, 159, 161, 161, 500, 1203, len(x)]
    for a, b in itertools.pairwise(bounds):
        framer.push(x[a:b])
    frames, positions = _pop_all(framer)
    assert framer.frame_size == size
    assert len(frames) == 7
    assert positions == [k * size for k in range(7)]
    np.testing.assert_array_equal(np.concatenate(frames), x[: 7 * size])
    assert framer.buffered == 13
    assert framer.next_frame_position == 7 * size


def test_frames_ready_counts_whole_frames_only(impl):
    framer = impl.Framer(8000, 20)
    framer.push(np.zeros(159, np.float32))
    assert framer.frames_ready == 0
    framer.push(np.zeros(1, np.float32))
    assert framer.frames_ready == 1
    framer.push(np.zeros(321, np.float32))
    assert framer.frames_ready == 3


def test_pop_without_a_whole_frame_returns_false_and_leaves_the_buffer_alone(impl):
    framer = impl.Framer(16000, 10)
    framer.push(np.ones(159, np.float32))
    out = np.full(160, 7, np.float32)
    assert not framer.pop_into(out)
    assert (out == 7).all()
    assert framer.next_frame_position == 0


def test_empty_chunks_change_nothing(impl):
    framer = impl.Framer(8000)
    for _ in range(5):
        framer.push(np.zeros(0, np.float32))
        framer.push_pcm16(np.zeros(0, np.int16))
    assert framer.buffered == 0
    assert framer.frames_ready == 0


def test_capacity_is_rounded_down_to_whole_frames(impl):
    assert impl.Framer(8000, 30, capacity_ms=1000).capacity == 33 * 240


def test_pcm16_chunks_are_scaled_like_the_codecs(impl):
    framer = impl.Framer(8000)
    pcm = np.random.default_rng(3).integers(-32768, 32768, 333).astype(np.int16)
    framer.push_pcm16(pcm[:1])
    framer.push_pcm16(pcm[1:])
    frames, _ = _pop_all(framer)
    np.testing.assert_array_equal(np.concatenate(frames), codecs.pcm16_to_float32(pcm[:320]))


def test_a_chunk_larger_than_the_ring_keeps_the_newest_whole_frames(impl):
    """Overflow drops the oldest whole frames: the grid and the positions stay exact."""
    framer = impl.Framer(8000, 20, capacity_ms=100)
    x = _ramp(2000)
    framer.push(x[:50])
    framer.push(x[50:])
    assert framer.capacity == 800
    assert framer.dropped_frames == 8
    frames, positions = _pop_all(framer)
    assert positions == [1280, 1440, 1600, 1760]
    for frame, position in zip(frames, positions):
        np.testing.assert_array_equal(frame, x[position : position + 160])
    assert framer.buffered == 80


def test_an_unread_ring_drops_frames_as_chunks_keep_coming(impl):
    framer = impl.Framer(16000, 30, capacity_ms=60)
    x = _ramp(480 * 5 + 7)
    for a in range(0, len(x), 97):
        framer.push(x[a : a + 97])
    assert framer.buffered <= framer.capacity
    frames, positions = _pop_all(framer)
    assert framer.dropped_frames == 4
    assert positions == [1920]
    np.testing.assert_array_equal(frames[0], x[1920:2400])
    assert framer.buffered == 7


def test_nan_and_inf_samples_become_silence_and_are_counted(impl):
    framer = impl.Framer(8000, 10)
    x = np.full(80, 0.25, np.float32)
    x[[0, 3, 79]] = [np.nan, np.inf, -np.inf]
    framer.push(x)
    frames, _ = _pop_all(framer)
    expected = x.copy()
    expected[[0, 3, 79]] = 0
    np.testing.assert_array_equal(frames[0], expected)
    assert framer.nonfinite_samples == 3


def test_reset_starts_a_new_stream_at_sample_zero(impl):
    framer = impl.Framer(8000, 10, capacity_ms=20)
    framer.push(np.ones(1000, np.float32))
    framer.reset()
    assert (framer.buffered, framer.next_frame_position, framer.dropped_frames) == (0, 0, 0)
    framer.push(np.ones(80, np.float32))
    assert framer.frames_ready == 1


def test_pop_into_refuses_a_buffer_shorter_than_a_frame(impl):
    framer = impl.Framer(8000)
    framer.push(np.zeros(160, np.float32))
    with pytest.raises(ValueError, match="a frame is 160"):
        framer.pop_into(np.zeros(159, np.float32))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((44100, 20), "use a call rate"),
        ((8000, 25), "frame length in ms"),
        ((16000, 20, 19), "at least one 20 ms frame"),
        ((8000, 20, 0), "at least one"),
    ],
)
def test_settings_it_cannot_frame_are_refused_with_what_to_use(impl, args, message):
    with pytest.raises(ValueError, match=message):
        impl.Framer(*args)


# The impl fixture hands over a module, which no example can change.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(st.tuples(st.sampled_from(["float", "pcm16", "pop"]), st.integers(0, 700)), max_size=30),
    capacity_ms=st.sampled_from([20, 60, 1000]),
)
def test_twin_and_compiled_framer_agree(ops, capacity_ms):
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _framing_c, _framing_py

    twin, compiled = _framing_py.Framer(8000, 20, capacity_ms), _framing_c.Framer(8000, 20, capacity_ms)
    rng = np.random.default_rng(len(ops))
    out_py, out_c = np.zeros(160, np.float32), np.zeros(160, np.float32)
    for op, n in ops:
        if op == "float":
            chunk = rng.uniform(-1, 1, n).astype(np.float32)
            twin.push(chunk)
            compiled.push(chunk)
        elif op == "pcm16":
            chunk = rng.integers(-32768, 32768, n).astype(np.int16)
            twin.push_pcm16(chunk)
            compiled.push_pcm16(chunk)
        else:
            assert twin.pop_into(out_py) == compiled.pop_into(out_c)
            np.testing.assert_array_equal(out_py, out_c)
        assert (twin.buffered, twin.next_frame_position, twin.dropped_frames) == (
            compiled.buffered,
            compiled.next_frame_position,
            compiled.dropped_frames,
        )
