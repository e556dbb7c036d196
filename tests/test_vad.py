"""Voice activity detection: stage (a) (both implementations), Silero, and the two combined."""

import os

import numpy as np
import pytest

from conftest import fetched, twin_or_compiled
from parley.core import evalset, vad
from parley.core.vad import SILENCE, SPEECH, UNSURE, VadConfigError, VadSettings

RATE = 16000
FRAME = 320

PARITY_TURNS = ("beckett/clean/wideband", "beckett/snr5/wideband", "beckett/snr0/g711",
                "two_cities/03/snr10/wideband", "espeak/order-number/snr20/g711", "espeak/date/clean/wideband")


@pytest.fixture(params=["py", "c"])
def stage_a(request):
    """The plain-Python twin and the compiled detector, run through the same tests."""
    return twin_or_compiled(request, "_vad_py", "_vad_c")


@pytest.fixture(scope="module")
def turns(models_dir):
    fetched(models_dir, "beckett", "beckett.wav")
    fetched(models_dir, "two-cities", "two_cities.wav")
    return {turn.name: turn for turn in evalset.build_turn_set(models_dir)}


@pytest.fixture(scope="module")
def silero_vad(models_dir):
    from parley.core.silero import SileroVad

    return SileroVad(fetched(models_dir, "silero-vad", "silero_vad.onnx"))


def frames_of(audio, size):
    return [audio[k * size:(k + 1) * size] for k in range(len(audio) // size)]


def decide(detector, audio, size=FRAME):
    return np.array([detector.process(frame) for frame in frames_of(audio, size)])


def white_noise(seconds, dbfs, seed=0, rate=RATE):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * 10 ** (dbfs / 20)).astype(np.float32)


def f1(decided, truth):
    return 2 * np.sum(decided & truth) / (np.sum(decided) + np.sum(truth))


# --- stage (a) -----------------------------------------------------------------------------------

def test_compiled_detector_is_built_and_typed():
    """The build must not fall back to Python, nor compile the twin without its .pxd types."""
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    assert vad.COMPILED
    detector = vad.NoiseFloorVad()
    assert type(detector).__module__ == "parley.core._vad_c"
    with pytest.raises(AttributeError):
        detector.score = 1.0  # a readonly C field, so _vad_c.pxd was applied
    with pytest.raises(AttributeError):
        detector.anything_else = 1  # no instance __dict__: a cdef class


@pytest.mark.models
def test_python_and_compiled_detectors_agree_frame_by_frame_on_the_evaluation_set(turns):
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _vad_c, _vad_py

    for name in PARITY_TURNS:
        turn = turns[name]
        size = turn.sample_rate * turn.frame_ms // 1000
        twin, compiled = _vad_py.NoiseFloorVad(turn.sample_rate), _vad_c.NoiseFloorVad(turn.sample_rate)
        for frame in frames_of(turn.audio, size)[:300]:
            assert twin.process(frame) == compiled.process(frame), name
            assert twin.holding == compiled.holding
            assert twin.score == pytest.approx(compiled.score, abs=1e-12)
            assert twin.noise_floor_db == pytest.approx(compiled.noise_floor_db, abs=1e-9)


@pytest.mark.models
@pytest.mark.parametrize("name", ["espeak/order-number/snr20/wideband", "espeak/postcode/snr20/wideband"])
def test_speech_is_heard_and_the_pause_in_a_caller_line_is_not(stage_a, turns, name):
    turn = turns[name]
    decided = decide(stage_a.NoiseFloorVad(RATE, 20), turn.audio)
    assert np.mean(decided[turn.frame_labels] == SPEECH) > 0.7
    hold_start, hold_end = turn.holds[0]
    inside = decided[hold_start // FRAME + 6: hold_end // FRAME - 1]
    assert np.mean(inside == SILENCE) > 0.9


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_every_supported_rate_and_frame_length_finds_a_tone_burst_in_noise(stage_a, sample_rate, frame_ms):
    noise = white_noise(3.0, -50, rate=sample_rate)
    t = np.arange(int(0.6 * sample_rate)) / sample_rate
    start = int(2.0 * sample_rate)
    noise[start:start + len(t)] += (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    size = sample_rate * frame_ms // 1000
    decided = decide(stage_a.NoiseFloorVad(sample_rate, frame_ms), noise, size)
    per_s = 1000 // frame_ms
    assert np.all(decided[int(2.1 * per_s):int(2.5 * per_s)] == SPEECH)
    before = decided[int(0.5 * per_s):int(1.9 * per_s)]
    assert SPEECH not in before and np.mean(before == SILENCE) > (0.6 if size < 160 else 0.85)


def test_score_is_a_probability_and_rises_with_level(stage_a):
    detector = stage_a.NoiseFloorVad()
    decide(detector, white_noise(2.0, -55))
    scores = []
    for dbfs in (-55, -45, -35, -25):
        detector.process(white_noise(0.02, dbfs, seed=dbfs + 100))
        scores.append(detector.score)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores) and scores[0] < 0.5 < scores[-1]


def test_frames_holding_nan_or_inf_are_silence_and_do_not_poison_the_floor(stage_a):
    noise = white_noise(2.0, -50)
    clean, dirty = stage_a.NoiseFloorVad(), stage_a.NoiseFloorVad()
    decide(clean, noise)
    decide(dirty, noise)
    bad = np.full(FRAME, 0.1, dtype=np.float32)
    for poison in (np.nan, np.inf, -np.inf):
        bad[17] = poison
        assert dirty.process(bad) == SILENCE
        assert dirty.score == 0.0
    after = white_noise(1.0, -30, seed=1)
    assert decide(clean, after).tolist() == decide(dirty, after).tolist()
    assert np.isfinite(dirty.noise_floor_db) and dirty.noise_floor_db == clean.noise_floor_db


def test_an_empty_frame_changes_nothing(stage_a):
    detector = stage_a.NoiseFloorVad()
    decide(detector, white_noise(0.5, -50))
    before = (detector.decision, detector.score, detector.noise_floor_db, detector.frames)
    assert detector.process(np.zeros(0, dtype=np.float32)) == before[0]
    assert (detector.decision, detector.score, detector.noise_floor_db, detector.frames) == before


def test_frames_of_odd_lengths_are_taken_as_they_come(stage_a):
    detector = stage_a.NoiseFloorVad()
    audio = white_noise(1.0, -40)
    for size in (1, 7, 319, 321, 1000, 4096):
        assert detector.process(audio[:size]) in (SILENCE, SPEECH, UNSURE)


def test_digital_silence_and_a_whisper_below_the_silence_level_are_silence(stage_a):
    detector = stage_a.NoiseFloorVad()
    assert set(decide(detector, np.zeros(RATE, np.float32)).tolist()) == {SILENCE}
    assert set(decide(detector, white_noise(1.0, -80)).tolist()) == {SILENCE}


def test_the_noise_floor_drops_at_once_and_rises_within_its_window(stage_a):
    settings = VadSettings()
    detector = stage_a.NoiseFloorVad(RATE, 20, settings)
    decide(detector, white_noise(2.0, -75))
    quiet_floor = detector.noise_floor_db
    louder = decide(detector, white_noise(3.0, -55, seed=1))
    assert louder[0] != SILENCE, "a sudden louder line is not silence yet"
    window_frames = settings.floor_window_ms // 20
    assert np.all(louder[window_frames + 10:] == SILENCE), "after one floor window it is the new floor"
    assert detector.noise_floor_db == pytest.approx(quiet_floor + 20, abs=2)
    detector.process(white_noise(0.02, -75, seed=2))
    assert detector.noise_floor_db == pytest.approx(quiet_floor, abs=4), "a quieter frame lowers it at once"


def test_on_a_noisy_line_the_floor_is_not_clear_silence_but_a_question_for_stage_b(stage_a):
    """Weak speech hides just above the floor of a noisy line; on a clear line it cannot."""
    decisions, line_snr = {}, {}
    for name, noise_dbfs in (("clear", -70), ("noisy", -20)):
        detector = stage_a.NoiseFloorVad()
        decisions[name] = decide(detector, white_noise(3.0, noise_dbfs))[50:]
        line_snr[name] = detector.line_snr_db
    assert line_snr["clear"] > VadSettings().clear_line_db > VadSettings().noisy_line_db > line_snr["noisy"]
    assert np.mean(decisions["clear"] == SILENCE) > 0.9
    assert np.mean(decisions["noisy"] == UNSURE) > 0.5 and SPEECH not in decisions["noisy"]


@pytest.mark.parametrize(("args", "message"), [
    ((44100, 20), "8000 or 16000 Hz, not 44100"),
    ((16000, 25), "10, 20 or 30 ms frames, not 25 ms"),
    ((16000, 20, VadSettings(speech_margin_db=3.0)), "silence_margin_db"),
    ((16000, 20, VadSettings(noisy_line_db=40.0)), "noisy_line_db"),
])
def test_a_detector_it_cannot_run_is_refused_at_construction(stage_a, args, message):
    with pytest.raises(VadConfigError, match=message):
        stage_a.NoiseFloorVad(*args)


@pytest.mark.parametrize(("field", "value"), [("confirm", "sometimes"), ("silero_silence", 0.7),
                                              ("silero_catch_up", -1)])
def test_settings_that_cannot_work_are_refused(field, value):
    with pytest.raises(VadConfigError, match=field):
        VadSettings(**{field: value})


# --- Silero ------------------------------------------------------------------------------------

@pytest.mark.models
def test_silero_scores_several_calls_in_one_run_exactly_as_one_by_one(silero_vad, turns):
    names = ["beckett/snr5/wideband", "two_cities/02/clean/wideband", "espeak/postcode/snr0/wideband"]
    audios = [turns[name].audio for name in names]
    single = []
    for audio in audios:
        stream = silero_vad.new_stream(RATE)
        single.append([silero_vad.score(stream, w) for w in frames_of(audio, 512)[:60]])
    streams = [silero_vad.new_stream(RATE) for _ in audios]
    batched = [silero_vad.score_batch(streams, [frames_of(a, 512)[i] for a in audios]) for i in range(60)]
    assert np.array_equal(np.array(single, dtype=np.float32), np.array(batched).T)
    assert np.max(single[0]) > 0.9 and min(np.min(s) for s in single) < 0.1


@pytest.mark.models
def test_silero_runs_at_8khz_on_its_256_sample_windows(silero_vad, turns):
    turn = turns["beckett/clean/g711"]
    stream = silero_vad.new_stream(8000)
    probs = np.array([silero_vad.score(stream, w) for w in frames_of(turn.audio, 256)])
    window_speech = turn.frame_labels[(np.arange(len(probs)) * 256 + 128) // 160]
    assert np.mean(probs[window_speech] > 0.5) > 0.8 and np.mean(probs[~window_speech] < 0.5) > 0.8


@pytest.mark.models
def test_a_corrupt_window_does_not_poison_silero_state(silero_vad, turns):
    windows = frames_of(turns["beckett/clean/wideband"].audio, 512)[:40]
    corrupt = [w.copy() for w in windows]
    corrupt[10][100:200] = np.nan
    repaired = [w.copy() for w in windows]
    repaired[10][100:200] = 0.0
    a, b = silero_vad.new_stream(), silero_vad.new_stream()
    assert [silero_vad.score(a, w) for w in corrupt] == [silero_vad.score(b, w) for w in repaired]


@pytest.mark.models
def test_silero_refuses_what_it_cannot_score(silero_vad):
    with pytest.raises(ValueError, match="8000 or 16000 Hz, not 44100"):
        silero_vad.new_stream(44100)
    with pytest.raises(ValueError, match="has 512 samples, not 320"):
        silero_vad.score(silero_vad.new_stream(), np.zeros(320, np.float32))
    with pytest.raises(ValueError, match="batch them per rate"):
        silero_vad.score_batch([silero_vad.new_stream(8000), silero_vad.new_stream(16000)],
                               [np.zeros(256, np.float32), np.zeros(512, np.float32)])


def test_a_missing_silero_model_says_what_to_run(tmp_path):
    from parley.core.silero import SileroVad

    with pytest.raises(FileNotFoundError, match="parley models fetch"):
        SileroVad(tmp_path / "silero_vad.onnx")


# --- two stages --------------------------------------------------------------------------------

@pytest.mark.models
@pytest.mark.parametrize(("name", "floor"), [("beckett/clean/wideband", 0.9), ("beckett/snr20/g711", 0.88),
                                             ("beckett/snr5/wideband", 0.85)])
def test_two_stage_f1_on_beckett_stays_above_its_floor(silero_vad, turns, name, floor):
    turn = turns[name]
    size = turn.sample_rate * turn.frame_ms // 1000
    detector = vad.TwoStageVad(silero_vad, turn.sample_rate, turn.frame_ms)
    assert f1(decide(detector, turn.audio, size), turn.frame_labels) >= floor


@pytest.mark.models
def test_silero_is_asked_only_about_part_of_a_clean_call(silero_vad, turns):
    detector = vad.TwoStageVad(silero_vad)
    decide(detector, turns["beckett/clean/wideband"].audio)
    assert 0 < detector.frames_confirmed < 0.5 * detector.frames


@pytest.mark.models
def test_confirm_always_scores_every_window_once(silero_vad, turns):
    detector = vad.TwoStageVad(silero_vad, settings=VadSettings(confirm="always"))
    audio = turns["beckett/snr10/wideband"].audio
    decide(detector, audio)
    assert detector.windows_scored == (len(audio) // FRAME * FRAME) // 512


@pytest.mark.models
def test_many_calls_in_one_batched_tick_decide_as_each_call_alone(silero_vad, turns):
    names = ["beckett/snr5/wideband", "two_cities/04/snr0/wideband", "espeak/spelling/clean/wideband",
             "beckett/snr10/g711"]
    alone, together = [], []
    for name in names:
        turn = turns[name]
        alone.append(decide(vad.TwoStageVad(silero_vad, turn.sample_rate), turn.audio,
                            turn.sample_rate * 20 // 1000)[:150].tolist())
    vads = [vad.TwoStageVad(silero_vad, turns[name].sample_rate) for name in names]
    for k in range(150):
        frames = [frames_of(turns[name].audio, turns[name].sample_rate * 20 // 1000)[k] for name in names]
        together.append(vad.process_calls(vads, frames))
    assert [list(column) for column in zip(*together)] == alone


@pytest.mark.models
def test_bad_frames_in_the_middle_of_a_call_are_survived(silero_vad, turns):
    detector = vad.TwoStageVad(silero_vad)
    audio = turns["beckett/snr5/wideband"].audio
    frames = frames_of(audio, FRAME)
    broken = np.full(FRAME, np.nan, dtype=np.float32)
    for k, frame in enumerate(frames[:200]):
        detector.process(frame)
        if k % 40 == 20:
            for odd in (broken, np.zeros(0, np.float32), frame[:17], np.concatenate([frame, frame])):
                assert detector.process(odd) in (True, False)
                assert np.isfinite(detector.silero_prob)
    assert np.isfinite(detector.stream.state).all()


@pytest.mark.models
def test_eight_khz_calls_use_silero_at_eight_khz(silero_vad, turns):
    detector = vad.TwoStageVad(silero_vad, 8000)
    assert detector.window_size == 256
    turn = turns["beckett/clean/g711"]
    assert f1(decide(detector, turn.audio, 160), turn.frame_labels) >= 0.88
