"""The core's evaluation set: labels from the clean signal, noise at the SNR asked, G.711 at 8 kHz."""

import numpy as np
import pytest

from conftest import fetched
from parley.core import codecs, evalset
from parley.core.evalset import FRAME_MS, HOLD_MIN_MS, RATE, SCRIPTED_LINES, TELEPHONE_RATE


@pytest.fixture(scope="module")
def turn_set(models_dir):
    fetched(models_dir, "beckett", "beckett.wav")
    fetched(models_dir, "two-cities", "two_cities.wav")
    return evalset.build_turn_set(models_dir)


@pytest.fixture(scope="module")
def by_name(turn_set):
    return {turn.name: turn for turn in turn_set}


@pytest.mark.models
def test_every_source_comes_in_every_condition_on_both_channels(turn_set):
    sources = {evalset.source_of(turn.name) for turn in turn_set}
    assert {"beckett", "two_cities/01", "espeak/order-number"} <= sources
    assert len([s for s in sources if s.startswith("two_cities/")]) >= 6
    conditions = {(turn.snr_db, turn.channel) for turn in turn_set}
    assert conditions == {(snr, channel) for snr in (None, 20.0, 10.0, 5.0, 0.0) for channel in ("wideband", "g711")}
    assert len(turn_set) == len(sources) * len(conditions)


@pytest.mark.models
def test_beckett_is_six_phrases_with_five_pauses_between(by_name):
    turn = by_name["beckett/clean/wideband"]
    assert len(turn.speech_segments) == 6
    assert len(turn.holds) == 5
    assert all(0.5 < (end - start) / RATE < 1.0 for start, end in turn.holds)
    assert turn.text.startswith("Ever tried.")


@pytest.mark.models
@pytest.mark.parametrize("line", SCRIPTED_LINES, ids=lambda line: line.name)
def test_scripted_pauses_are_holds_of_the_length_they_were_built_with(by_name, line):
    name = f"{'piper' if line.voice == 'piper' else 'espeak'}/{line.name}/clean/wideband"
    if name not in by_name:
        pytest.skip("the Piper voice is not fetched: run `parley models fetch --for test`")
    turn = by_name[name]
    built = [part for part in line.parts if isinstance(part, int)]
    found = [(end - start) * 1000 / RATE for start, end in turn.holds]
    for pause_ms in built:
        assert any(abs(ms - pause_ms) <= 30 for ms in found), (pause_ms, found)
    assert turn.speech_segments[0][0] == pytest.approx(evalset.LEAD_IN_S * RATE, abs=RATE // 100)
    assert turn.text == line.text


@pytest.mark.models
def test_the_end_of_speech_is_where_the_speech_stops_and_silence_follows(turn_set):
    for turn in turn_set:
        assert turn.end_of_speech == turn.speech_segments[-1][1]
        assert (len(turn.audio) - turn.end_of_speech) / turn.sample_rate >= 1.5
    espeak = [turn for turn in turn_set if turn.name.startswith("espeak/") and turn.channel == "wideband"]
    for turn in espeak:
        tail = turn.end_of_speech + RATE // 20
        assert not np.any(turn.clean[tail:]), "50 ms on, the synthesized silence is exactly zero"
        assert np.any(turn.clean[turn.end_of_speech - RATE // 100:turn.end_of_speech])


@pytest.mark.models
def test_labels_segments_and_holds_describe_the_same_speech(turn_set):
    for turn in turn_set:
        frame = turn.sample_rate * turn.frame_ms // 1000
        assert turn.frame_ms == FRAME_MS
        assert len(turn.frame_labels) == len(turn.audio) // frame and len(turn.audio) % frame == 0
        inside = np.zeros(len(turn.audio), dtype=bool)
        for start, end in turn.speech_segments:
            assert start < end
            inside[start:end] = True
        assert np.array_equal(turn.frame_labels, inside.reshape(-1, frame).mean(axis=1) >= 0.5)
        for (_, end), (start, _) in zip(turn.speech_segments, turn.speech_segments[1:]):
            assert (start - end) * 1000 / turn.sample_rate >= HOLD_MIN_MS
        assert turn.holds == tuple((a[1], b[0]) for a, b in zip(turn.speech_segments, turn.speech_segments[1:]))


@pytest.mark.models
def test_labels_come_from_the_clean_signal_so_every_variant_shares_them(by_name):
    reference = by_name["two_cities/02/clean/wideband"]
    for tag in ("snr20", "snr5", "snr0"):
        for channel in ("wideband", "g711"):
            turn = by_name[f"two_cities/02/{tag}/{channel}"]
            assert np.array_equal(turn.frame_labels, reference.frame_labels)
            scale = RATE // turn.sample_rate
            assert turn.speech_segments == tuple((s // scale, e // scale) for s, e in reference.speech_segments)


@pytest.mark.models
def test_the_mixed_noise_has_the_snr_that_was_asked(turn_set):
    for turn in turn_set:
        if turn.snr_db is None or turn.channel != "wideband":
            continue
        noise = turn.audio.astype(np.float64) - turn.clean
        speech = np.concatenate([turn.clean[s:e] for s, e in turn.speech_segments]).astype(np.float64)
        measured = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
        assert measured == pytest.approx(turn.snr_db, abs=0.05), turn.name
        assert np.max(np.abs(turn.audio)) < 1.0, "no clipping"


@pytest.mark.models
def test_every_noise_kind_is_heard_at_every_snr(turn_set):
    for snr in (20.0, 10.0, 5.0, 0.0):
        kinds = {turn.noise for turn in turn_set if turn.snr_db == snr}
        assert kinds == set(evalset.NOISE_KINDS)
    assert {turn.noise for turn in turn_set if turn.snr_db is None} == {None}


@pytest.mark.models
def test_the_clean_variant_is_the_clean_signal(by_name):
    turn = by_name["beckett/clean/wideband"]
    assert turn.audio is turn.clean or np.array_equal(turn.audio, turn.clean)


@pytest.mark.models
def test_the_telephone_variant_is_8khz_mu_law(by_name):
    wide, phone = by_name["beckett/snr10/wideband"], by_name["beckett/snr10/g711"]
    assert phone.sample_rate == TELEPHONE_RATE and phone.channel == "g711"
    assert len(phone.audio) * 2 == len(wide.audio) and len(phone.clean) == len(phone.audio)
    pcm = codecs.float32_to_pcm16(phone.audio)
    assert np.array_equal(codecs.ulaw_decode(codecs.ulaw_encode(pcm)), pcm), "every sample is a mu-law level"
    spectrum = np.abs(np.fft.rfft(by_name["beckett/snr0/g711"].audio)) ** 2
    freqs = np.fft.rfftfreq(len(phone.audio), 1 / TELEPHONE_RATE)
    assert spectrum[freqs > 3800].sum() < 0.01 * spectrum.sum(), "band-limited below 4 kHz"


@pytest.mark.models
def test_a_second_build_comes_from_the_cache_unchanged(models_dir, turn_set):
    again = evalset.build_turn_set(models_dir)
    assert [t.name for t in again] == [t.name for t in turn_set]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, turn_set))


@pytest.mark.parametrize("kind", evalset.NOISE_KINDS)
@pytest.mark.parametrize("rate", [8000, 16000])
def test_noise_only_is_seeded_and_at_its_level(kind, rate):
    noise = evalset.noise_only(0.5, rate, kind, seed=3)
    assert noise.dtype == np.float32 and len(noise) == rate // 2
    level = 10 * np.log10(np.mean(noise.astype(np.float64) ** 2))
    assert level == pytest.approx(evalset.NOISE_ONLY_DBFS, abs=0.5)
    assert np.array_equal(noise, evalset.noise_only(0.5, rate, kind, seed=3))
    assert not np.array_equal(noise, evalset.noise_only(0.5, rate, kind, seed=4))


def test_noise_only_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="noise kind must be one of"):
        evalset.noise_only(1.0, RATE, "brown", seed=0)
    with pytest.raises(ValueError, match="8000 or 16000"):
        evalset.noise_only(1.0, 44100, "white", seed=0)


def test_the_offline_resampler_keeps_a_tone_and_removes_what_cannot_be_carried():
    for in_rate, out_rate in ((48000, 16000), (16000, 8000), (8000, 16000), (22050, 16000)):
        tone = np.sin(2 * np.pi * 440 * np.arange(in_rate) / in_rate)
        out = evalset.resample(tone, in_rate, out_rate)
        expected = np.sin(2 * np.pi * 440 * np.arange(len(out)) / out_rate)
        assert len(out) == out_rate
        assert np.max(np.abs(out - expected)[100:-100]) < 1e-3
    alias = evalset.resample(np.sin(2 * np.pi * 5000 * np.arange(RATE) / RATE), RATE, TELEPHONE_RATE)
    assert np.sqrt(np.mean(alias[100:-100] ** 2)) < 1e-3


def test_missing_recordings_say_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="parley models fetch"):
        evalset.build_turn_set(tmp_path)


@pytest.mark.models
def test_every_hold_says_what_kind_of_pause_it_is(turn_set):
    for turn in turn_set:
        assert len(turn.hold_kinds) == len(turn.holds), turn.name
        assert set(turn.hold_kinds) <= set(evalset.HOLD_KINDS), turn.name
    kinds = {turn.name.split("/")[0]: set() for turn in turn_set}
    for turn in turn_set:
        kinds[turn.name.split("/")[0]] |= set(turn.hold_kinds)
    assert kinds["espeak"] == {"spliced"}
    assert "cut" in kinds["two_cities"] and "cut" in kinds["beckett"]


@pytest.mark.models
@pytest.mark.parametrize("cut", evalset.MID_SENTENCE_CUTS, ids=lambda cut: cut.name)
def test_a_mid_sentence_pause_is_one_hold_of_the_length_it_was_built_with(by_name, cut):
    name = f"{cut.source}/{cut.name}/clean/wideband"
    if name not in by_name:
        pytest.skip("the Piper voice is not fetched: run `parley models fetch --for test`")
    for channel, rate in (("wideband", RATE), ("g711", TELEPHONE_RATE)):
        turn = by_name[f"{cut.source}/{cut.name}/clean/{channel}"]
        cuts = [(end - start) * 1000 / rate for (start, end), kind in zip(turn.holds, turn.hold_kinds) if kind == "cut"]
        assert len(cuts) == 1, (channel, turn.hold_kinds)
        # The inserted pause, plus at most the word boundary's own silence on either side.
        assert cut.pause_ms - 20 <= cuts[0] <= cut.pause_ms + 120, (channel, cuts)
        assert 400 <= cuts[0] <= 900


def test_a_pause_that_lands_inside_a_word_is_refused():
    speech = np.sin(np.arange(RATE) * 2 * np.pi * 200 / RATE).astype(np.float32)
    with_pause, inserted = evalset._with_pause(speech, RATE // 2, np.zeros(RATE // 2, np.float32))
    assert len(with_pause) == len(speech) + RATE // 2 and inserted == (RATE // 2, RATE)
    segments = ((0, RATE // 2), (RATE, len(with_pause)))
    assert evalset._hold_kinds("t", segments, "natural", inserted) == ("cut",)
    with pytest.raises(ValueError, match="not a hold"):
        evalset._hold_kinds("t", ((0, len(with_pause)),), "natural", inserted)


def test_each_agent_line_belongs_to_a_line_of_the_set_and_reaches_all_its_copies():
    from parley.core.evalset import AGENT_LINE_BEFORE, MID_SENTENCE_CUTS, SCRIPTED_LINES, agent_line_before

    sources = ({f"{'piper' if line.voice == 'piper' else 'espeak'}/{line.name}" for line in SCRIPTED_LINES}
               | {f"{cut.source}/{cut.name}" for cut in MID_SENTENCE_CUTS})
    assert set(AGENT_LINE_BEFORE) <= sources, set(AGENT_LINE_BEFORE) - sources
    assert agent_line_before("piper/cut-dob/snr10/g711") == agent_line_before("piper/cut-dob/clean/wideband") \
        == "Can you confirm your date of birth?"
    assert agent_line_before("beckett/clean/wideband") is None and agent_line_before("piper/cut-kettle/clean/g711") is None
