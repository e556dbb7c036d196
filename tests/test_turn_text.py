"""The text half of the end-of-turn check: does the transcript so far sound finished?"""

import pytest

from parley.core.turn_text import transcript_sounds_unfinished


@pytest.mark.parametrize("text", [
    "Can you help me with a refund?",
    "My order number is 4512.",
    "Thank you, that is all.",
    "Yes!",
    "Could you put me through to a person, please?",
    "Thank you.",
    "I think so.",
    "Who am I speaking to?",
    "Can you put me through?",
    "Ever failed",                    # Whisper drops the full stop when little silence follows
])
def test_a_closed_sentence_sounds_finished(text):
    assert not transcript_sounds_unfinished(text)


@pytest.mark.parametrize("text", [
    "My order number is",
    "I was wondering if I could...",  # Whisper's trailing off
    "I'd like to change the…",
    "We had everything the s-",       # a word cut off
    "It was the age of.",             # a full stop after a preposition is a mishearing of the pause
    "The account is in the name of.",
    "So, um.",
    "I ordered a kettle and",
    "In short,",
    "",
    "   ",
    None,
    "?",
    "Can you check whether the?",
])
def test_an_open_sentence_sounds_unfinished(text):
    assert transcript_sounds_unfinished(text)


def test_case_and_apostrophes_do_not_hide_a_continuation_word():
    assert transcript_sounds_unfinished("I think IT'S.")
    assert transcript_sounds_unfinished("Give it to THE.")
    assert not transcript_sounds_unfinished("I think it's broken.")
