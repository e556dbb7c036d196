"""The text half of the end-of-turn check: does the transcript so far sound finished?"""

import math

import pytest

from conftest import fetched
from parley.core.acoustic_turn import AcousticTurnSettings
from parley.core.turn_text import (AGENT_LINE_WORDS, MAX_WORDS, TEXT_MODEL_RELATIVE_PATH, TurnTextModel,
                                   TurnTextModelError, caller_words, transcript_sounds_unfinished)


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


# --- the words model (SmolLM2-135M through llama.cpp) --------------------------------------------

FINISHED_AND_CUT = [
    ("I'd like to change the delivery address.", "I'd like to change the"),
    ("It was delivered on the twelfth of March.", "It was delivered on the"),
    ("The account is in the name of Jane Doe.", "The account is in the name of"),
    ("Can you put me through to a person please?", "Can you put me through to a"),
    ("I was wondering if I could change the address.", "I was wondering if I could"),
    ("When will my parcel arrive?", "When will my"),
    ("My order number is 4512.", "My order number is"),
    ("I ordered a kettle and it arrived broken.", "I ordered a kettle and it"),
]


@pytest.fixture(scope="module")
def words_model(models_dir):
    return TurnTextModel.from_path(fetched(models_dir, *TEXT_MODEL_RELATIVE_PATH))


@pytest.mark.parametrize("finished, cut", FINISHED_AND_CUT, ids=[cut for _, cut in FINISHED_AND_CUT])
def test_the_words_model_reads_a_finished_sentence_as_far_likelier_to_end_than_its_cut_start(words_model, finished, cut):
    p_finished, p_cut = words_model.p_complete(finished), words_model.p_complete(cut)
    assert p_cut < 0.01 < p_finished
    assert p_finished > 10 * p_cut


def test_the_words_model_ends_most_finished_sentences_on_the_words_alone(words_model):
    """With Smart Turn unsure (0.5) the words decide: p 0.15 is the default threshold's log-odds."""
    threshold = 1 / (1 + math.exp(-AcousticTurnSettings().text_threshold))
    ended = [text for text, _ in FINISHED_AND_CUT if words_model.p_complete(text) >= threshold]
    assert len(ended) >= len(FINISHED_AND_CUT) // 2, ended


def test_a_short_answer_reads_as_finished_after_the_question_it_answers(words_model):
    question = "Shall I go ahead with the refund?"
    threshold = 1 / (1 + math.exp(-AcousticTurnSettings().text_threshold))
    after_greeting, after_question = words_model.p_complete("Yes please."), words_model.p_complete("Yes please.", question)
    assert after_greeting < threshold <= after_question and after_question > 3 * after_greeting
    assert words_model.p_complete("I ordered a kettle and it", question) < 0.01
    # Only the line's last AGENT_LINE_WORDS words are read, and a line of nothing reads as the greeting.
    kept = AGENT_LINE_WORDS - len(question.split())
    assert (words_model.p_complete("Yes please.", "blah " * 200 + question)
            == words_model.p_complete("Yes please.", "blah " * kept + question))
    assert words_model.p_complete("Yes please.", "  ") == after_greeting


@pytest.mark.parametrize("line", [None, "Shall I go ahead with the refund?"])
def test_a_reading_does_not_depend_on_what_was_read_before(words_model, line):
    texts = ["Can you put me through to a person please?", "I ordered a kettle and it", "Yes."]
    forwards = [words_model.p_complete(text, line) for text in texts]
    backwards = [words_model.p_complete(text, line) for text in reversed(texts)][::-1]
    between_other_lines = []
    for text in texts:
        words_model.p_complete("Hello.", "What is your name?")
        between_other_lines.append(words_model.p_complete(text, line))
    words_model._llm.reset()
    assert forwards == backwards == between_other_lines == [words_model.p_complete(text, line) for text in texts]


@pytest.mark.parametrize("text", ["", "...", None, " , - "])
def test_no_words_read_as_zero_without_running_the_model(words_model, text):
    assert words_model.p_complete(text) == 0.0


def test_a_runaway_transcript_is_read_by_its_last_words(words_model):
    p = words_model.p_complete("and then " * 400 + "that is all")
    assert 0.0 <= p <= 1.0
    assert caller_words("And then, THE end...") == "and then the end"
    assert len(caller_words("word " * 400).split()) == MAX_WORDS


def test_a_file_that_is_not_a_model_is_refused_with_a_typed_error(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(TurnTextModelError, match="broken.gguf"):
        TurnTextModel.from_path(broken)
    with pytest.raises(TurnTextModelError, match="missing.gguf"):
        TurnTextModel.from_path(tmp_path / "missing.gguf")


def test_the_prompts_start_is_read_when_the_model_is_made_not_on_the_first_turn(models_dir):
    model = TurnTextModel.from_path(fetched(models_dir, *TEXT_MODEL_RELATIVE_PATH))
    start = model._llm.tokenize(model.prompt_start().encode(), add_bos=False, special=True)
    assert model._llm.n_tokens == len(start) and list(model._llm.input_ids[:model._llm.n_tokens]) == start
