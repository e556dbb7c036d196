"""The RTP jitter buffer: order restored, losses concealed, delay adapted, bad packets survived."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import twin_or_compiled

from parley.core import jitter
from parley.core.jitter import FrameKind, JitterSettings, JitterSettingsError

NO_EXTENSIONS = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"
F = 160
"""20 ms of G.711 at 8 kHz."""
FRAME_NS = 20_000_000
RAMP = ((np.arange(F) - 80) * 40).astype(np.int16)


@pytest.fixture(params=["py", "c"])
def impl(request):
    """The plain-Python twin and the compiled jitter buffer, run through the same tests."""
    return twin_or_compiled(request, "_jitter_py", "_jitter_c")


def payload(seq):
    """A frame that says which packet it came from: RAMP shifted by ``seq % 1000``."""
    return RAMP + np.int16(seq % 1000)


def seq_of(frame):
    return int(frame[0]) - int(RAMP[0])


def play(buffer, arrivals, ticks, first_seq=0, first_ts=0):
    """Drive ``buffer`` tick by tick: packets whose arrival time has come are put (in arrival
    order), then one frame is popped. ``arrivals`` maps packet index -> arrival in ns (a list of
    times for duplicates). Returns [(kind, frame)]."""
    events = sorted((t, i) for i, times in arrivals.items() for t in np.atleast_1d(times))
    out, played, e = np.zeros(F, np.int16), [], 0
    for tick in range(ticks):
        now = tick * FRAME_NS
        while e < len(events) and events[e][0] <= now:
            t, i = events[e]
            buffer.put((first_seq + i) & 0xFFFF, (first_ts + i * F) & 0xFFFFFFFF, payload(first_seq + i), int(t))
            e += 1
        played.append((FrameKind(buffer.pop_into(out)), out.copy()))
    return played


def on_time(n):
    return {i: i * FRAME_NS for i in range(n)}


def test_compiled_jitter_buffer_is_built_with_its_c_types():
    """The build must neither fall back to the .py source nor compile it without its .pxd."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _jitter_c

    assert jitter.COMPILED
    assert jitter.JitterBuffer is _jitter_c.JitterBuffer
    assert not hasattr(_jitter_c.JitterBuffer(JitterSettings(), F, 8000), "__dict__"), (
        "compiled without _jitter_c.pxd: a plain Python class"
    )


@pytest.mark.parametrize("depth", [0, 2, 5])
def test_in_order_stream_passes_through_with_a_fixed_delay_of_depth_frames(impl, depth):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=depth), F, 8000)
    played = play(buffer, on_time(40), 40)
    assert [kind for kind, _ in played[:depth]] == [FrameKind.SILENCE] * depth
    assert all(kind == FrameKind.NORMAL for kind, _ in played[depth:])
    assert [seq_of(frame) for _, frame in played[depth:]] == list(range(40 - depth))
    np.testing.assert_array_equal(played[depth][1], payload(0))
    assert buffer.depth == depth
    assert (buffer.received, buffer.lost, buffer.concealed, buffer.late) == (40, 0, 0, 0)


def test_reordered_packets_come_out_in_order(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=3), F, 8000)
    arrivals = on_time(30)
    arrivals[4], arrivals[5] = arrivals[5], arrivals[4]
    arrivals[10], arrivals[12] = arrivals[12], arrivals[10]
    played = play(buffer, arrivals, 30)
    normal = [seq_of(frame) for kind, frame in played if kind == FrameKind.NORMAL]
    assert normal == list(range(len(normal)))
    assert (buffer.lost, buffer.late, buffer.concealed) == (0, 0, 0)


def test_duplicates_are_dropped_and_counted_before_and_after_they_play(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(20)
    arrivals[3] = [3 * FRAME_NS, 3 * FRAME_NS + 1]
    arrivals[5] = [5 * FRAME_NS, 15 * FRAME_NS]
    played = play(buffer, arrivals, 20)
    assert [seq_of(frame) for _, frame in played[2:]] == list(range(18))
    assert (buffer.duplicates, buffer.late, buffer.received) == (2, 0, 22)


def test_a_lost_packet_is_concealed_by_repeating_the_last_frame(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(20)
    del arrivals[7]
    played = play(buffer, arrivals, 20)
    kinds = [kind for kind, _ in played[2:]]
    assert kinds[6:9] == [FrameKind.NORMAL, FrameKind.CONCEALED, FrameKind.NORMAL]
    np.testing.assert_array_equal(played[2 + 7][1], payload(6))
    assert seq_of(played[2 + 8][1]) == 8
    assert (buffer.lost, buffer.concealed) == (1, 1)


def test_a_burst_loss_repeats_once_then_fades_to_silence(impl):
    """One repeat, then ``fade_frames`` frames fading linearly to zero, then silence."""
    fade = JitterSettings().fade_frames
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(30)
    for i in range(10, 20):
        del arrivals[i]
    played = play(buffer, arrivals, 30)
    kinds = [kind for kind, _ in played[12:22]]
    assert kinds == [FrameKind.CONCEALED] * (1 + fade) + [FrameKind.SILENCE] * (9 - fade)
    last = payload(9).astype(np.int64)
    np.testing.assert_array_equal(played[12][1], last)
    total = fade * F
    gains = np.arange(total - 1, -1, -1)
    expected_fade = np.fix(np.tile(last, fade) * gains / total).astype(np.int16)
    np.testing.assert_array_equal(np.concatenate([frame for _, frame in played[13 : 13 + fade]]), expected_fade)
    assert played[12 + fade][1][-1] == 0
    assert not played[13 + fade][1].any()
    assert seq_of(played[22][1]) == 20
    assert (buffer.lost, buffer.concealed) == (10, 1 + fade)


def test_sequence_numbers_wrap_from_65535_to_0(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(20)
    arrivals[4], arrivals[6] = arrivals[6], arrivals[4]
    played = play(buffer, arrivals, 20, first_seq=65530)
    assert [seq_of(frame) for _, frame in played[2:]] == [(65530 + i) % 1000 for i in range(18)]
    assert (buffer.lost, buffer.late, buffer.strays) == (0, 0, 0)


def test_timestamp_wrap_does_not_look_like_jitter(impl):
    buffer = impl.JitterBuffer(JitterSettings(), F, 8000)
    play(buffer, on_time(20), 20, first_ts=2**32 - 5 * F)
    assert buffer.jitter == 0
    assert buffer.depth == JitterSettings().min_depth_frames


def test_a_packet_after_its_slot_has_played_is_dropped_and_counted_late(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(20)
    arrivals[5] = 12 * FRAME_NS
    played = play(buffer, arrivals, 20)
    assert played[2 + 5][0] == FrameKind.CONCEALED
    assert [seq_of(frame) for _, frame in played[2 + 6 :]] == list(range(6, 18))
    assert (buffer.late, buffer.lost) == (1, 1)


def test_depth_grows_under_jitter_and_comes_back_down_when_calm(impl):
    rng = np.random.default_rng(11)
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2, max_depth_frames=10), F, 8000)
    arrivals = {i: i * FRAME_NS + int(rng.uniform(0, 100e6)) for i in range(500)}
    arrivals.update({i: i * FRAME_NS for i in range(500, 2500)})
    out, e = np.zeros(F, np.int16), 0
    events = sorted((t, i) for i, t in arrivals.items())
    depths = []
    for tick in range(2500):
        while e < len(events) and events[e][0] <= tick * FRAME_NS:
            buffer.put(events[e][1], events[e][1] * F, payload(events[e][1]), events[e][0])
            e += 1
        kind = buffer.pop_into(out)
        depths.append(buffer.depth)
    assert max(depths[:500]) >= 5, "100 ms of jitter must deepen the buffer"
    assert buffer.depth == 2
    assert buffer.skipped > 0, "the delay follows the depth down"
    assert kind == FrameKind.NORMAL
    assert seq_of(out) == (2499 - buffer.depth) % 1000


def test_a_stall_delays_playout_instead_of_losing_the_stalled_frames(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(40)
    for i in range(10, 16):
        arrivals[i] = 18 * FRAME_NS
    played = play(buffer, arrivals, 40)
    assert buffer.underruns == 1
    assert (buffer.lost, buffer.late) == (0, 0)
    assert [seq_of(frame) for kind, frame in played if kind == FrameKind.NORMAL][:20] == list(range(20))


def test_a_sequence_jump_resynchronizes_after_two_packets_in_a_row(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    out = np.zeros(F, np.int16)
    for i in range(10):
        buffer.put(100 + i, i * F, payload(100 + i), i * FRAME_NS)
        buffer.pop_into(out)
    assert not buffer.put(40000, 0, payload(40000), 10 * FRAME_NS)
    assert buffer.strays == 1
    for i in range(1, 10):
        buffer.put(40000 + i, i * F, payload(40000 + i), (10 + i) * FRAME_NS)
    assert buffer.resyncs == 1
    kinds, seqs = [], []
    for _ in range(12):
        kinds.append(buffer.pop_into(out))
        seqs.append(seq_of(out))
    normal = [s for k, s in zip(kinds, seqs) if k == FrameKind.NORMAL]
    assert normal == [(40001 + i) % 1000 for i in range(9)]


def test_a_single_wild_sequence_number_is_a_stray_and_changes_nothing(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000)
    arrivals = on_time(20)
    played_before = play(impl.JitterBuffer(JitterSettings(min_depth_frames=2), F, 8000), arrivals, 20)
    out = np.zeros(F, np.int16)
    played = []
    for tick in range(20):
        buffer.put(tick, tick * F, payload(tick), tick * FRAME_NS)
        if tick == 7:
            buffer.put(30000, 0, payload(0), tick * FRAME_NS)
        played.append((FrameKind(buffer.pop_into(out)), out.copy()))
    assert buffer.strays == 1
    assert [seq_of(frame) for _, frame in played] == [seq_of(frame) for _, frame in played_before]


def test_a_payload_of_the_wrong_size_is_dropped_and_counted(impl):
    buffer = impl.JitterBuffer(JitterSettings(), F, 8000)
    assert not buffer.put(0, 0, np.zeros(F - 1, np.int16), 0)
    assert not buffer.put(1, F, np.zeros(0, np.int16), 0)
    assert buffer.put(2, 2 * F, np.zeros(F, np.int16), 0)
    assert (buffer.malformed, buffer.received) == (2, 1)


def test_pop_into_refuses_a_buffer_shorter_than_a_frame(impl):
    buffer = impl.JitterBuffer(JitterSettings(), F, 8000)
    with pytest.raises(ValueError, match="a frame is 160"):
        buffer.pop_into(np.zeros(F - 1, np.int16))


def test_frame_size_and_clock_rate_must_be_positive(impl):
    with pytest.raises(ValueError, match="samples per packet"):
        impl.JitterBuffer(JitterSettings(), 0, 8000)
    with pytest.raises(ValueError, match="clock rate"):
        impl.JitterBuffer(JitterSettings(), F, -1)


def test_silence_before_the_first_packet(impl):
    buffer = impl.JitterBuffer(JitterSettings(), F, 8000)
    out = np.ones(F, np.int16)
    assert buffer.pop_into(out) == FrameKind.SILENCE
    assert not out.any()


def test_reset_forgets_the_stream_and_its_statistics(impl):
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=1), F, 8000)
    play(buffer, on_time(10), 10)
    buffer.reset()
    assert (buffer.received, buffer.depth, buffer.jitter) == (0, 1, 0)
    played = play(buffer, {i: i * FRAME_NS for i in range(5)}, 5, first_seq=9000)
    assert [seq_of(frame) for _, frame in played[1:]] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_depth_frames": 5, "max_depth_frames": 3}, "min_depth_frames .5. <= max_depth_frames .3."),
        ({"max_depth_frames": 51}, "<= 50"),
        ({"min_depth_frames": -1}, "whole number of frames"),
        ({"fade_frames": 2.5}, "whole number of frames"),
        ({"shrink_after_frames": 0}, "at least 1"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_what_to_change(changes, message):
    with pytest.raises(JitterSettingsError, match=message):
        JitterSettings(**changes)


packet_fates = st.lists(
    st.tuples(
        st.sampled_from(["on_time", "on_time", "lost", "duplicate", "delayed"]),
        st.integers(0, 8),
        st.integers(0, 19_999_999),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fates=packet_fates, first_seq=st.integers(0, 65535), first_ts=st.integers(0, 2**32 - 1),
       jump=st.booleans(), min_depth=st.integers(0, 4))
def test_twin_and_compiled_agree_on_a_random_packet_trace(fates, first_seq, first_ts, jump, min_depth):
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _jitter_c, _jitter_py

    events = []
    for i, (fate, delay, noise) in enumerate(fates):
        seq = first_seq + i + (30000 if jump and i > len(fates) // 2 else 0)
        t = i * FRAME_NS + noise
        if fate == "lost":
            continue
        if fate == "delayed":
            t += delay * FRAME_NS
        events.append((t, seq, first_ts + i * F))
        if fate == "duplicate":
            events.append((t + delay * FRAME_NS, seq, first_ts + i * F))
    events.sort()
    settings_ = JitterSettings(min_depth_frames=min_depth, max_depth_frames=6, shrink_after_frames=20)
    twin, compiled = _jitter_py.JitterBuffer(settings_, F, 8000), _jitter_c.JitterBuffer(settings_, F, 8000)
    out_py, out_c, e = np.zeros(F, np.int16), np.zeros(F, np.int16), 0
    stats = ("received", "duplicates", "late", "strays", "lost", "concealed", "underruns", "skipped", "resyncs", "depth")
    for tick in range(len(fates) + 20):
        while e < len(events) and events[e][0] <= tick * FRAME_NS:
            t, seq, ts = events[e]
            assert twin.put(seq, ts, payload(seq), t) == compiled.put(seq, ts, payload(seq), t)
            e += 1
        assert twin.pop_into(out_py) == compiled.pop_into(out_c)
        np.testing.assert_array_equal(out_py, out_c)
        assert [getattr(twin, s) for s in stats] == [getattr(compiled, s) for s in stats]
        assert twin.jitter == compiled.jitter
