import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fetched, twin_or_compiled
from parley.core.endpointer import EndpointerSettings, EndpointerSettingsError, EndpointerState
from parley.core.endpointer import EndpointEvent as E

RATE = 16000
FRAME = 320
NO_EXTENSIONS = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"


@pytest.fixture(params=["py", "c"])
def impl(request):
    """The plain-Python twin and the compiled endpointer, run through the same tests."""
    return twin_or_compiled(request, "_endpointer_py", "_endpointer_c")


def frames(*runs):
    """Speech decisions from runs like ("_", 10) (silence) and ("#", 12) (speech)."""
    return [mark == "#" for mark, count in runs for _ in range(count)]


def feed(endpointer, decisions, first_sample=0):
    """Every event as (frame index, event, event sample)."""
    events = []
    for k, is_speech in enumerate(decisions):
        code = endpointer.feed(is_speech, first_sample + k * FRAME)
        if code != E.NO_EVENT:
            events.append((k, E(code), endpointer.event_sample))
    return events


def test_compiled_endpointer_is_built_with_its_c_types():
    """The build must not silently fall back to Python, nor compile without the .pxd's types."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import endpointer

    assert endpointer.COMPILED
    assert endpointer.Endpointer.__module__ == "parley.core._endpointer_c"
    typed = endpointer.Endpointer(EndpointerSettings(), RATE)
    assert not hasattr(typed, "__dict__"), "setup.py compiled _endpointer_c.py without _endpointer_c.pxd"


def test_speech_start_is_stamped_at_the_first_speech_frame_once_min_speech_is_confirmed(impl):
    endpointer = impl.Endpointer(EndpointerSettings(min_speech_ms=200, pre_roll_ms=300), RATE)
    events = feed(endpointer, frames(("_", 30), ("#", 12)))
    assert events == [(39, E.SPEECH_START, 30 * FRAME)]
    assert endpointer.speech_start_sample == 30 * FRAME
    assert endpointer.stt_start_sample == 30 * FRAME - 4800
    assert endpointer.state == EndpointerState.SPEECH


def test_pre_roll_never_reaches_before_the_call(impl):
    endpointer = impl.Endpointer(EndpointerSettings(pre_roll_ms=300), RATE)
    feed(endpointer, frames(("_", 2), ("#", 10)))
    assert endpointer.stt_start_sample == 0


def test_a_blip_shorter_than_min_speech_is_not_a_turn(impl):
    endpointer = impl.Endpointer(EndpointerSettings(min_speech_ms=200), RATE)
    assert feed(endpointer, frames(("_", 5), ("#", 9), ("_", 60), ("#", 3), ("_", 60))) == []
    assert endpointer.state == EndpointerState.IDLE


def test_end_of_turn_comes_exactly_one_hangover_after_the_last_speech_frame(impl):
    endpointer = impl.Endpointer(EndpointerSettings(hangover_ms=700, short_silence_ms=200), RATE)
    events = feed(endpointer, frames(("_", 5), ("#", 20), ("_", 50)))
    speech_end = 25 * FRAME
    assert events == [
        (14, E.SPEECH_START, 5 * FRAME),
        (34, E.SHORT_SILENCE, speech_end + 3200),
        (59, E.END_OF_TURN, speech_end + 11200),
    ]
    assert endpointer.speech_end_sample == speech_end
    assert endpointer.state == EndpointerState.IDLE


def test_a_pause_shorter_than_the_hangover_keeps_the_turn_open(impl):
    endpointer = impl.Endpointer(EndpointerSettings(hangover_ms=700, short_silence_ms=200), RATE)
    events = feed(endpointer, frames(("#", 20), ("_", 34), ("#", 20), ("_", 10)))
    assert [event for _, event, _ in events] == [E.SPEECH_START, E.SHORT_SILENCE, E.SHORT_SILENCE]
    assert endpointer.state == EndpointerState.TRAILING_SILENCE


def test_short_silence_is_announced_once_per_pause(impl):
    endpointer = impl.Endpointer(EndpointerSettings(hangover_ms=700, short_silence_ms=200), RATE)
    events = feed(endpointer, frames(("#", 20), ("_", 30)))
    assert [event for _, event, _ in events].count(E.SHORT_SILENCE) == 1


def test_max_turn_cuts_a_turn_that_never_pauses(impl):
    endpointer = impl.Endpointer(EndpointerSettings(max_turn_ms=2000), RATE)
    events = feed(endpointer, frames(("_", 3), ("#", 100)))
    assert events[1] == (3 + 99, E.MAX_TURN_REACHED, 3 * FRAME + 32000)
    assert endpointer.speech_end_sample == 3 * FRAME + 32000
    assert endpointer.state == EndpointerState.IDLE
    later = feed(endpointer, frames(("#", 10)), first_sample=103 * FRAME)
    assert later == [(9, E.SPEECH_START, 103 * FRAME)], "speech that goes on starts the next turn"


def test_the_acoustic_verdict_ends_the_turn_at_the_current_frame(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    events = feed(endpointer, frames(("#", 20), ("_", 10)))
    scored_until = events[-1][2]
    feed(endpointer, frames(("_", 2)), first_sample=30 * FRAME)
    assert endpointer.end_turn_now(scored_until) == E.END_OF_TURN
    assert endpointer.event_sample == 32 * FRAME
    assert endpointer.speech_end_sample == 20 * FRAME
    assert endpointer.state == EndpointerState.IDLE


def test_a_verdict_on_audio_the_caller_has_since_talked_over_is_ignored(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    events = feed(endpointer, frames(("#", 20), ("_", 10), ("#", 5), ("_", 2)))
    scored_until = events[1][2]
    assert endpointer.end_turn_now(scored_until) == E.NO_EVENT
    assert endpointer.state == EndpointerState.TRAILING_SILENCE


def test_a_verdict_outside_a_pause_is_ignored(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    assert endpointer.end_turn_now(0) == E.NO_EVENT
    feed(endpointer, frames(("#", 20)))
    assert endpointer.end_turn_now(20 * FRAME) == E.NO_EVENT
    assert endpointer.state == EndpointerState.SPEECH


def test_a_frame_from_the_past_is_ignored_and_counted(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    feed(endpointer, frames(("#", 20)))
    assert endpointer.feed(False, 5 * FRAME) == E.NO_EVENT
    assert endpointer.feed(False, -FRAME) == E.NO_EVENT
    assert endpointer.frames_out_of_order == 2
    assert endpointer.state == EndpointerState.SPEECH and endpointer.position == 20 * FRAME


def test_lost_frames_count_as_the_time_they_covered(impl):
    endpointer = impl.Endpointer(EndpointerSettings(hangover_ms=700), RATE)
    feed(endpointer, frames(("#", 20)))
    assert endpointer.feed(False, 20 * FRAME + 11200 - FRAME) == E.END_OF_TURN
    assert endpointer.event_sample == 20 * FRAME + 11200


def test_an_eight_khz_call_keeps_the_same_timings_in_its_own_samples(impl):
    endpointer = impl.Endpointer(EndpointerSettings(min_speech_ms=200, hangover_ms=500), 8000)
    assert endpointer.frame_samples == 160
    events = [endpointer.feed(is_speech, k * 160) for k, is_speech in enumerate(frames(("#", 10), ("_", 25)))]
    assert events.count(E.END_OF_TURN) == 1 and endpointer.event_sample == 10 * 160 + 4000


def test_feed_frames_gives_the_events_of_frame_by_frame_feeding(impl):
    decisions = frames(("_", 7), ("#", 15), ("_", 12), ("#", 30), ("_", 40), ("#", 4), ("_", 3))
    one_by_one = feed(impl.Endpointer(EndpointerSettings(), RATE), decisions, first_sample=FRAME)
    codes, samples = np.zeros(len(decisions), np.int32), np.zeros(len(decisions), np.int64)
    count = impl.Endpointer(EndpointerSettings(), RATE).feed_frames(
        np.array(decisions, np.uint8), FRAME, codes, samples)
    assert list(zip(codes[:count], samples[:count])) == [(event, sample) for _, event, sample in one_by_one]


def test_feed_frames_refuses_event_buffers_shorter_than_the_frames(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    with pytest.raises(ValueError, match="allocate one entry per frame"):
        endpointer.feed_frames(np.ones(10, np.uint8), 0, np.zeros(9, np.int32), np.zeros(10, np.int64))


def test_an_empty_run_of_frames_gives_no_events(impl):
    endpointer = impl.Endpointer(EndpointerSettings(), RATE)
    assert endpointer.feed_frames(np.zeros(0, np.uint8), 0, np.zeros(0, np.int32), np.zeros(0, np.int64)) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"hangover_ms": 0}, "hangover_ms must be more than 0 ms"),
    ({"min_speech_ms": -20}, "min_speech_ms must be more than 0 ms"),
    ({"pre_roll_ms": 12.5}, "pre_roll_ms must be a whole number of milliseconds"),
    ({"short_silence_ms": 700}, "short_silence_ms .700. must be below hangover_ms .700."),
    ({"max_turn_ms": 800}, "max_turn_ms .800. must exceed min_speech_ms . hangover_ms"),
])
def test_settings_that_cannot_work_are_refused_with_what_to_change(changes, message):
    with pytest.raises(EndpointerSettingsError, match=message):
        EndpointerSettings(**changes)


@pytest.mark.parametrize(("rate", "frame_ms"), [(16000, 0), (0, 20), (11025, 20), (22050, 30)])
def test_a_frame_that_is_not_whole_samples_is_refused_at_construction(impl, rate, frame_ms):
    with pytest.raises(ValueError, match="not a whole number of samples"):
        impl.Endpointer(EndpointerSettings(), rate, frame_ms)


_SETTINGS = st.builds(
    EndpointerSettings,
    min_speech_ms=st.integers(20, 300), hangover_ms=st.integers(300, 900),
    max_turn_ms=st.integers(1300, 4000), pre_roll_ms=st.integers(0, 400), short_silence_ms=st.integers(1, 299))
_STEPS = st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(-1, 40)), max_size=600)


@settings(max_examples=60, deadline=None)
@given(endpointer_settings=_SETTINGS, steps=_STEPS)
def test_twins_give_identical_events_on_any_decisions(endpointer_settings, steps):
    """Frames (with gaps and replays) and stale or fresh verdicts, fed to both twins alike."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _endpointer_c, _endpointer_py

    twins = [m.Endpointer(endpointer_settings, 8000) for m in (_endpointer_py, _endpointer_c)]
    traces = [[], []]
    start = 0
    for is_speech, skip, verdict_back in steps:
        start += skip * 160 if skip < 3 else -160
        for twin, trace in zip(twins, traces):
            trace.append((twin.feed(is_speech, start), twin.event_sample, twin.state, twin.speech_end_sample))
            if verdict_back >= 0:
                trace.append((twin.end_turn_now(twin.position - verdict_back * 160), twin.event_sample))
        start += 160
    assert traces[0] == traces[1]


# --- the evaluation set ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def turns(models_dir):
    fetched(models_dir, "beckett", "beckett.wav")
    fetched(models_dir, "two-cities", "two_cities.wav")
    from parley.core.evalset import build_turn_set

    return build_turn_set(models_dir)


def run_turn(module, endpointer_settings, turn, decisions):
    endpointer = module.Endpointer(endpointer_settings, turn.sample_rate, turn.frame_ms)
    codes, samples = np.zeros(len(decisions), np.int32), np.zeros(len(decisions), np.int64)
    count = endpointer.feed_frames(np.asarray(decisions, np.uint8), 0, codes, samples)
    return list(zip(codes[:count].tolist(), samples[:count].tolist()))


def stage_a_decisions(turn):
    from parley.core.vad import SILENCE, NoiseFloorVad

    vad = NoiseFloorVad(turn.sample_rate, turn.frame_ms)
    n = turn.sample_rate * turn.frame_ms // 1000
    return [vad.process(turn.audio[k * n:(k + 1) * n]) != SILENCE for k in range(len(turn.audio) // n)]


@pytest.mark.models
def test_twins_agree_on_the_whole_evaluation_set(turns):
    """Through the clean-signal labels and through the frame-path VAD (stage a, unsure = speech)."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _endpointer_c, _endpointer_py

    endpointer_settings = EndpointerSettings(hangover_ms=500)
    for turn in turns:
        for decisions in (turn.frame_labels, stage_a_decisions(turn)):
            assert run_turn(_endpointer_py, endpointer_settings, turn, decisions) == \
                run_turn(_endpointer_c, endpointer_settings, turn, decisions), turn.name


@pytest.mark.models
@pytest.mark.parametrize("hangover_ms", [500, 800])
def test_on_the_evaluation_set_the_turn_ends_one_hangover_after_speech_and_never_inside_a_shorter_pause(
        impl, turns, hangover_ms):
    """The endpointer itself, fed the clean-signal labels as its frame decisions (not a VAD's)."""
    endpointer_settings = EndpointerSettings(hangover_ms=hangover_ms)
    delays_ms, premature = [], []
    for turn in turns:
        ends = [sample for code, sample in run_turn(impl, endpointer_settings, turn, turn.frame_labels)
                if code == E.END_OF_TURN]
        after = [sample for sample in ends if sample >= turn.end_of_speech]
        delays_ms.append((after[0] - turn.end_of_speech) * 1000 / turn.sample_rate)
        short_holds = [(a, b) for a, b in turn.holds if (b - a) * 1000 < hangover_ms * turn.sample_rate]
        premature += [(turn.name, sample) for sample in ends for a, b in short_holds if a <= sample < b]
    assert abs(np.median(delays_ms) - hangover_ms) <= 40
    assert premature == []
