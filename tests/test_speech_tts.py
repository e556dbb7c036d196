"""Text to speech: sentence splitting, streaming with sample-exact offsets, cancel, rates, and a
round trip through Whisper."""

import threading

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.speech import Recognizer, Synthesizer, speakable, split_sentences
from parley.appliance.speech.scoring import word_errors
from parley.core.resample import UnsupportedRateError

VOICE = "voice-en_US-joe-medium"
REPLY = "Thank you for calling Acme. I found your order. It ships today. Anything else?"


@pytest.mark.parametrize("text, expected", [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Mr. Smith paid $12.50 today. Thanks!", ["Mr. Smith paid $12.50 today.", "Thanks!"]),
    ("Bring one, e.g. the blue one. Then call.", ["Bring one, e.g. the blue one.", "Then call."]),
    ("Your order 4512.3 is ready. Order No. 7 is not.", ["Your order 4512.3 is ready.", "Order No. 7 is not."]),
    ("I said no. Then he left.", ["I said no.", "Then he left."]),
    ("J. R. R. Tolkien wrote it. Great.", ["J. R. R. Tolkien wrote it.", "Great."]),
    ("Wait... what? Okay.", ["Wait... what?", "Okay."]),
    ("It costs 3.5 percent more. Sorry.", ["It costs 3.5 percent more.", "Sorry."]),
    ("1. Open the box. 2. Take it out.", ["1. Open the box.", "2. Take it out."]),
    ("First line\nsecond line", ["First line", "second line"]),
    ('He said "yes." Then he went.', ['He said "yes."', "Then he went."]),
    ("...", []),
    ("", []),
])
def test_sentences_end_where_a_reader_would_stop(text, expected):
    assert split_sentences(text) == expected


def test_a_long_sentence_is_spoken_in_clauses_that_keep_every_word():
    text = ("Your refund of $1,200.00 has been issued, and you should see it on your statement within five to "
            "seven business days, although some banks take a little longer; if it has not arrived by then, call us.")
    clauses = split_sentences(text)
    assert len(clauses) > 1 and all(len(c) <= 160 for c in clauses)
    assert clauses[0] == "Your refund of $1,200.00 has been issued,"
    assert " ".join(clauses) == text


@pytest.mark.parametrize("text, spoken", [
    ("Mr. Smith paid $12.50.", "Mister Smith paid 12 dollars and 50 cents."),
    ("That is $1 or £0.99.", "That is 1 dollar or 99 pence."),
    ("Order #4512, part A-1042.", "Order number 4 5 1 2, part A 1 0 4 2."),
    ("Call 07700900123 on the 21st.", "Call 0 7 7 0 0 9 0 0 1 2 3 on the 21st."),
    ("It is COVID-19 safe since 1990.", "It is COVID-19 safe since 1990."),
])
def test_money_codes_and_titles_are_read_as_a_person_would(text, spoken):
    assert speakable(text) == spoken


@pytest.fixture(scope="module")
def synthesizer(models_dir):
    return Synthesizer(fetched(models_dir, VOICE, "model.onnx").parent, deterministic=True)


@pytest.fixture
def generate_calls(synthesizer, monkeypatch):
    """Records each sentence handed to the voice."""
    calls = []
    generate = synthesizer._voice.generate

    def recording(text, *args, **kwargs):
        calls.append(text)
        return generate(text, *args, **kwargs)

    monkeypatch.setattr(synthesizer._voice, "generate", recording)
    return calls


@pytest.mark.models
def test_the_first_chunk_comes_when_only_the_first_sentence_is_synthesized(synthesizer, generate_calls):
    chunks = synthesizer.stream(REPLY, 8000)
    first = next(chunks)
    assert (first.sentence_index, first.text, first.offset_samples) == (0, "Thank you for calling Acme.", 0)
    assert generate_calls == ["Thank you for calling Acme."]
    assert len(list(chunks)) == 3


@pytest.fixture(scope="module")
def native_length(synthesizer):
    """Samples of REPLY at the voice's own rate."""
    return sum(len(c.samples) for c in synthesizer.stream(REPLY))


@pytest.mark.models
@pytest.mark.parametrize("rate", [8000, 16000])
def test_chunks_are_contiguous_and_add_up_to_the_whole_utterance_at_the_asked_rate(synthesizer, native_length, rate):
    chunks = list(synthesizer.stream(REPLY, rate))
    assert [c.sentence_index for c in chunks] == [0, 1, 2, 3]
    assert all(c.sample_rate == rate and c.samples.dtype == np.float32 for c in chunks)
    ends = [c.offset_samples + len(c.samples) for c in chunks]
    assert [c.offset_samples for c in chunks] == [0, *ends[:-1]]
    assert ends[-1] == -(-native_length * rate // synthesizer.sample_rate), "the same speech, resampled sample-exact"
    assert 3.0 < ends[-1] / rate < 8.0


@pytest.mark.models
def test_a_cancel_stops_synthesis_before_the_next_sentence(synthesizer, generate_calls):
    cancelled = threading.Event()
    got = []
    for chunk in synthesizer.stream(REPLY, 8000, cancelled=cancelled):
        got.append(chunk)
        cancelled.set()  # the caller barged in while the first sentence played
    assert len(got) == 1 and len(generate_calls) == 1


@pytest.mark.models
def test_a_cancel_inside_a_sentence_stops_the_voice_at_its_next_sentence(synthesizer):
    """The sherpa-onnx callback returning 0: espeak-ng's sentences after the cancel are not made."""
    voice = synthesizer._voice
    whole, _ = voice.generate("One. Two. Three. Four.")
    made = []
    part, _ = voice.generate("One. Two. Three. Four.", on_sentence=lambda samples: made.append(len(samples)) or False)
    assert len(made) == 1 and len(part) == made[0] < len(whole) / 2


@pytest.mark.models
def test_nothing_to_say_yields_nothing_and_an_unsupported_rate_is_refused(synthesizer):
    assert list(synthesizer.stream("  ...  ", 8000)) == []
    with pytest.raises(UnsupportedRateError, match="11025"):
        list(synthesizer.stream("Hello.", 11025))


@pytest.mark.models
def test_the_provider_is_reported(synthesizer):
    assert synthesizer.provider.provider in ("cpu", "cuda") and synthesizer.provider.reason
    assert synthesizer.sample_rate == 22050


@pytest.mark.models
def test_whisper_understands_what_the_synthesizer_says_on_a_16khz_line(synthesizer, models_dir):
    recognizer = Recognizer.from_dir(fetched(models_dir, "whisper-tiny.en", "tiny.en-encoder.onnx").parent)
    line = "I would like to return my order, please."
    transcript = recognizer.transcribe(synthesizer.speak(line, 16000), 16000)
    errors, words = word_errors(line, transcript.text)
    assert errors <= 1, transcript.text
