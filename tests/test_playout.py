import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import twin_or_compiled

RATE = 16000
FRAME = 320
NO_EXTENSIONS = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"


@pytest.fixture(params=["py", "c"])
def impl(request):
    """The plain-Python twin and the compiled playout, run through the same tests."""
    return twin_or_compiled(request, "_playout_py", "_playout_c")


def ramp(n, start=0):
    return (np.arange(start, start + n) / 100000).astype(np.float32)


def play(playout, frames, frame=FRAME):
    """The next ``frames`` frames, concatenated, and whether each carried agent audio."""
    out, heard, carried = np.empty(frame, np.float32), [], []
    for _ in range(frames):
        carried.append(playout.next_frame_into(out))
        heard.append(out.copy())
    return np.concatenate(heard), carried


def test_compiled_playout_is_built_with_its_c_types():
    """The build must not silently fall back to Python, nor compile without the .pxd's types."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _playout_c

    assert not hasattr(_playout_c.Playout(RATE), "__dict__"), "setup.py compiled _playout_c.py without _playout_c.pxd"


def test_frames_come_out_in_order_and_silence_when_nothing_is_queued(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(800), utterance_id=1)
    heard, carried = play(playout, 4)
    assert carried == [True, True, True, False]
    assert np.array_equal(heard[:800], ramp(800)) and not heard[800:].any()
    assert playout.queued_samples == 0 and playout.current_utterance_id == -1


def test_the_reference_for_barge_in_is_the_frame_just_played(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(500), utterance_id=1)
    out = np.empty(FRAME, np.float32)
    playout.next_frame_into(out)
    playout.next_frame_into(out)
    assert np.array_equal(np.asarray(playout.reference), out)
    assert np.array_equal(out[:180], ramp(180, start=320)) and not out[180:].any()


def test_played_samples_are_counted_per_utterance_across_frame_boundaries(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(500), utterance_id=7)
    playout.push(ramp(300), utterance_id=7)
    playout.push(ramp(400), utterance_id=8)
    play(playout, 2)
    assert playout.current_utterance_id == 7
    assert (playout.played_samples(7), playout.played_samples(8)) == (640, 0)
    play(playout, 1)
    assert playout.current_utterance_id == 8
    assert (playout.played_samples(7), playout.played_samples(8)) == (800, 160)


def test_flush_drops_what_is_queued_and_keeps_what_was_heard(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(1000), utterance_id=1)
    playout.push(ramp(600), utterance_id=2)
    play(playout, 2)
    assert playout.flush() == 1600 - 640
    assert (playout.played_samples(1), playout.dropped_samples(1)) == (640, 360)
    assert (playout.played_samples(2), playout.dropped_samples(2)) == (0, 600)
    assert play(playout, 1)[1] == [False]
    assert playout.flush() == 0


def test_playout_goes_on_after_a_flush(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(1000), utterance_id=1)
    play(playout, 1)
    playout.flush()
    playout.push(ramp(320, start=5000), utterance_id=2)
    heard, carried = play(playout, 1)
    assert carried == [True] and np.array_equal(heard, ramp(320, start=5000))
    assert playout.played_samples(2) == 320


def test_the_ring_wraps_without_losing_a_sample(impl):
    playout = impl.Playout(RATE, max_buffer_s=1)
    pieces = [ramp(n, start=i * 1000) for i, n in enumerate([9000, 7000, 9000, 5000])]
    heard = []
    for i, piece in enumerate(pieces):
        playout.push(piece, utterance_id=i)
        frames, _ = play(playout, -(-len(piece) // FRAME))
        heard.append(frames[: len(piece)])
    assert all(np.array_equal(h, p) for h, p in zip(heard, pieces))


def test_more_than_the_buffer_holds_is_refused_whole(impl):
    playout = impl.Playout(RATE, max_buffer_s=1)
    playout.push(ramp(15000), utterance_id=1)
    with pytest.raises(OverflowError, match="push this once more has played, or raise max_buffer_s"):
        playout.push(ramp(1001), utterance_id=1)
    assert playout.queued_samples == 15000
    playout.push(ramp(1000), utterance_id=1)
    assert playout.queued_samples == 16000


def test_nan_and_infinite_samples_play_as_silence_and_are_counted(impl):
    playout = impl.Playout(RATE)
    samples = np.full(FRAME, 0.25, np.float32)
    samples[[3, 10, 11]] = [np.nan, np.inf, -np.inf]
    playout.push(samples, utterance_id=1)
    heard, _ = play(playout, 1)
    assert np.isfinite(heard).all() and heard[3] == heard[10] == heard[11] == 0.0 and heard[4] == 0.25
    assert playout.samples_repaired == 3


def test_an_empty_push_queues_nothing(impl):
    playout = impl.Playout(RATE)
    playout.push(np.zeros(0, np.float32), utterance_id=1)
    assert playout.queued_samples == 0 and playout.played_samples(1) == 0
    assert play(playout, 1)[1] == [False]


def test_an_utterance_cannot_continue_once_the_next_has_started(impl):
    playout = impl.Playout(RATE)
    playout.push(ramp(100), utterance_id=1)
    playout.push(ramp(100), utterance_id=2)
    with pytest.raises(ValueError, match="utterance 1 is already followed by 2"):
        playout.push(ramp(100), utterance_id=1)
    with pytest.raises(ValueError, match="utterance ids are 0 or more"):
        playout.push(ramp(100), utterance_id=-1)


def test_counts_are_kept_for_the_last_32_utterances(impl):
    playout = impl.Playout(RATE)
    for utterance in range(40):
        playout.push(ramp(FRAME), utterance_id=utterance)
        play(playout, 1)
    assert playout.played_samples(39) == playout.played_samples(8) == FRAME
    with pytest.raises(KeyError, match="utterance 7 was never pushed or is older than the last 32"):
        playout.played_samples(7)


def test_more_than_32_utterances_queued_at_once_are_refused(impl):
    playout = impl.Playout(RATE)
    for utterance in range(32):
        playout.push(ramp(10), utterance_id=utterance)
    with pytest.raises(OverflowError, match="32 utterances are queued at once"):
        playout.push(ramp(10), utterance_id=32)


def test_an_output_buffer_that_is_not_one_frame_is_refused(impl):
    playout = impl.Playout(RATE)
    for size in (FRAME - 1, FRAME + 1, 0):
        with pytest.raises(ValueError, match="a frame is 320"):
            playout.next_frame_into(np.zeros(size, np.float32))


@pytest.mark.parametrize(("rate", "frame_ms", "max_buffer_s"), [(16000, 0, 10), (11025, 20, 10), (16000, 20, 0)])
def test_a_playout_that_cannot_work_is_refused_at_construction(impl, rate, frame_ms, max_buffer_s):
    with pytest.raises(ValueError, match="whole number of samples|max_buffer_s must be more than 0"):
        impl.Playout(rate, frame_ms, max_buffer_s)


_ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(0, 900), st.integers(0, 2)),
    st.tuples(st.just("play"), st.integers(1, 4), st.just(0)),
    st.tuples(st.just("flush"), st.just(0), st.just(0)),
), max_size=60)


@settings(max_examples=60, deadline=None)
@given(actions=_ACTIONS)
def test_twins_play_and_count_alike(actions):
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _playout_c, _playout_py

    traces = []
    for module in (_playout_py, _playout_c):
        playout, trace, utterance, offset, pushed = module.Playout(8000, 20, 1), [], 0, 0, []
        for action, amount, step in actions:
            try:
                if action == "push":
                    utterance += step
                    playout.push(ramp(amount, start=offset), utterance)
                    offset += amount
                    pushed = [u for u in pushed if u != utterance][-31:] + [utterance]
                elif action == "play":
                    heard, carried = play(playout, amount, frame=160)
                    trace.append((heard.tobytes(), carried, playout.current_utterance_id))
                else:
                    trace.append(playout.flush())
            except OverflowError as exc:
                trace.append(str(exc))
            trace.append((playout.queued_samples,
                          [(u, playout.played_samples(u), playout.dropped_samples(u)) for u in pushed]))
        traces.append(trace)
    assert traces[0] == traces[1]
