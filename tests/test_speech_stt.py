"""Speech to text: real recordings and telephone audio through the fetched Whisper model."""

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.speech import (
    InvalidAudio,
    ProviderUnavailable,
    Recognizer,
    RecognizerSettings,
    UnsupportedModelDir,
    choose_provider,
)
from parley.appliance.speech.audio import resample
from parley.appliance.speech.provider import sherpa_has_cuda
from parley.appliance.speech.scoring import normalise_words, word_error_rate, word_errors
from parley.appliance.speech.stt import clean_text
from parley.core import codecs
from parley.core._audio_sets import read_wav
from parley.core.resample import UnsupportedRateError

BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


@pytest.fixture(scope="module")
def whisper_dir(models_dir):
    return fetched(models_dir, "whisper-tiny.en", "tiny.en-encoder.onnx").parent


@pytest.fixture(scope="module")
def recognizer(whisper_dir):
    return Recognizer.from_dir(whisper_dir)


@pytest.fixture(scope="module")
def beckett(models_dir):
    return read_wav(fetched(models_dir, "beckett", "beckett.wav"))


def telephone(samples, rate):
    """8 kHz G.711 mu-law, encoded and decoded."""
    narrow = resample(samples, rate, 8000)
    return codecs.pcm16_to_float32(codecs.ulaw_decode(codecs.ulaw_encode(codecs.float32_to_pcm16(narrow))))


@pytest.mark.models
def test_a_real_recording_is_transcribed_word_for_word(recognizer, beckett):
    transcript = recognizer.transcribe(*beckett)
    assert word_errors(BECKETT, transcript.text) == (0, 12), transcript.text
    assert transcript.audio_seconds == pytest.approx(9.96, abs=0.01)
    assert 0 < transcript.compute_seconds < transcript.audio_seconds


@pytest.mark.models
def test_8khz_g711_telephone_audio_is_resampled_and_understood(recognizer, beckett):
    line = telephone(*beckett)
    transcript = recognizer.transcribe(line, 8000)
    assert word_error_rate([(BECKETT, transcript.text)]) <= 1 / 12, transcript.text
    assert transcript.audio_seconds == pytest.approx(9.96, abs=0.01)


@pytest.mark.models
def test_a_turn_cut_short_gives_the_words_that_were_said(recognizer, beckett):
    samples, rate = beckett
    transcript = recognizer.transcribe(samples[: int(1.2 * rate)], rate)  # "Ever tried." and a breath
    assert normalise_words(transcript.text)[:2] == ["ever", "tried"], transcript.text


@pytest.mark.models
@pytest.mark.parametrize("length", [0, 1, 50, 799])
def test_input_too_short_for_a_word_gives_empty_text_without_running_the_engine(recognizer, length):
    """sherpa-onnx kills the process (SIGSEGV) on under one 10 ms frame; it is never asked."""
    transcript = recognizer.transcribe(np.full(length, 0.1, np.float32), 8000)
    assert (transcript.text, transcript.compute_seconds) == ("", 0.0)


@pytest.mark.models
def test_silence_gives_empty_text_and_the_hallucinated_annotation_is_dropped(recognizer):
    transcript = recognizer.transcribe(np.zeros(16000, np.float32), 16000)
    assert transcript.text == ""


@pytest.mark.models
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_samples_are_refused_with_a_typed_error(recognizer, bad):
    samples = np.zeros(16000, np.float32)
    samples[100] = bad
    with pytest.raises(InvalidAudio, match="1 of 16000 samples are NaN or infinite"):
        recognizer.transcribe(samples, 16000)


@pytest.mark.models
def test_stereo_and_unsupported_rates_are_refused(recognizer):
    with pytest.raises(InvalidAudio, match="mono"):
        recognizer.transcribe(np.zeros((2, 8000), np.float32), 8000)
    with pytest.raises(UnsupportedRateError, match="11025"):
        recognizer.transcribe(np.zeros(11025, np.float32), 11025)


@pytest.fixture(scope="module")
def short_padding_clip(beckett):
    """With only 50 padding frames Whisper loops on this clip ("Ever tried. Ever tried. ...")."""
    samples, rate = beckett
    return samples[: 2 * rate], rate


@pytest.mark.models
def test_a_decode_that_runs_into_the_token_limit_is_redone_with_the_long_padding(whisper_dir, short_padding_clip):
    recognizer = Recognizer.from_dir(whisper_dir, RecognizerSettings(tail_paddings=50))
    transcript = recognizer.transcribe(*short_padding_clip)
    assert transcript.retried and normalise_words(transcript.text).count("tried") == 1, transcript.text


@pytest.mark.models
def test_without_the_retry_short_padding_loops_until_the_token_limit(whisper_dir, short_padding_clip):
    recognizer = Recognizer.from_dir(whisper_dir, RecognizerSettings(tail_paddings=50, retry_tail_paddings=None))
    transcript = recognizer.transcribe(*short_padding_clip)
    assert normalise_words(transcript.text).count("tried") >= 3 and not transcript.retried


@pytest.mark.models
@pytest.mark.slow
def test_a_turn_longer_than_whisper_takes_is_transcribed_in_pieces(recognizer, models_dir):
    samples, rate = read_wav(fetched(models_dir, "two-cities", "two_cities.wav"))
    transcript = recognizer.transcribe(samples[: 33 * rate], rate)  # sherpa-onnx alone keeps 29.5 s
    text = " ".join(normalise_words(transcript.text))
    assert text.startswith("it was the best of times") and "age of wisdom" in text, transcript.text
    assert "in short the period was so far like the present period" in text, "the words after 29.5 s are kept"


def test_a_directory_without_a_known_model_is_a_typed_error_naming_what_is_there(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "tiny-encoder.onnx").write_bytes(b"")
    with pytest.raises(UnsupportedModelDir, match=r"found model\.bin, tiny-encoder\.onnx; expected .*-decoder\.onnx"):
        Recognizer.from_dir(tmp_path)


def test_a_missing_model_directory_says_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `parley models fetch`"):
        Recognizer.from_dir(tmp_path / "whisper-tiny.en")


def test_zero_tail_paddings_is_refused_since_sherpa_onnx_reads_it_as_1000():
    with pytest.raises(ValueError, match="sherpa-onnx reads 0 as 1000"):
        RecognizerSettings(tail_paddings=0)


def test_sound_annotations_are_not_words():
    assert clean_text(" (buzzer) Yes, please. [ Silence ]") == ("Yes, please.", ("(buzzer)", "[ Silence ]"))
    assert clean_text("!!!!!!") == ("", ())


@pytest.mark.models
def test_the_provider_and_why_it_was_chosen_are_reported(recognizer):
    assert recognizer.provider.provider in ("cpu", "cuda") and recognizer.provider.reason
    assert choose_provider("cpu").provider == "cpu"
    if choose_provider().provider == "cpu":
        with pytest.raises(ProviderUnavailable, match="PARLEY_SPEECH_PROVIDER=cuda but"):
            choose_provider("cuda")
    else:
        assert sherpa_has_cuda()


@pytest.mark.parametrize("reference, hypothesis", [
    ("My order number is 4 5 1 2 7.", "My order number is 45127."),
    ("It's 42 Elm Street.", "its forty-two elm street"),
    ("The total was 59 dollars.", "The total was $59."),
    ("My postcode is S W 1 A 1 A A.", "My postcode is SW1A 1AA."),
    ("I ordered it on the third of March.", "I ordered it on the 3rd of March"),
    ("Okay, go ahead.", "OK, go ahead!"),
])
def test_scoring_treats_spellings_of_the_same_words_alike(reference, hypothesis):
    assert word_errors(reference, hypothesis)[0] == 0


def test_word_errors_count_substitutions_insertions_and_deletions():
    assert word_errors("I want a refund", "I want to reef it") == (3, 4)
    assert word_error_rate([("yes please", "yes"), ("no", "no no")]) == pytest.approx(2 / 3)
