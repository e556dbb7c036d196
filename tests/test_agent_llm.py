"""The reply format: the grammar llama.cpp decodes under, and reading replies as they stream."""

import json

import pytest

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.llm import (
    ReplyParseError,
    SayStream,
    action_schema,
    all_tools,
    parse_action,
    render_messages,
)
from parley.appliance.demo import ACME_DIR


@pytest.fixture(scope="module")
def acme():
    return load_agent(ACME_DIR, variables={"var": "/tmp"})


def test_the_action_schema_compiles_to_a_llama_cpp_grammar(acme):
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = action_schema([(t.name, t.parameters) for t in all_tools(acme)])
    gbnf = json_schema_to_gbnf(json.dumps(schema))
    assert LlamaGrammar.from_string(gbnf, verbose=False) is not None
    for name in ("say", "lookup_order", "issue_refund", "transfer_to_human", "end_call", "skip_turn"):
        assert f'\\"{name}\\"' in gbnf


@pytest.mark.parametrize("pieces, spoken", [
    (['{"action": "say", "text": "Hel', 'lo there. ', 'Bye."}'], "Hello there. Bye."),
    (['{"action":"say","text":"He said \\"hi\\" \\u00e9', '\\\\ ok"}'], 'He said "hi" é\\ ok'),
    (['{"act', 'ion": "lookup_order", "arguments": {"order_id": "4512"}}'], ""),
    (['{"action": "say", "text": "a\\', 'nb"}'], "a b"),
])
def test_spoken_text_is_read_out_of_a_say_reply_while_it_streams(pieces, spoken):
    stream = SayStream()
    assert "".join(stream.feed(piece) for piece in pieces) == spoken


def test_a_complete_reply_parses_to_its_action():
    assert parse_action('{"action": "say", "text": "Hi."}') == ("say", "Hi.")
    assert parse_action('{"action": "lookup_order", "arguments": {"order_id": "1"}}') == ("lookup_order", {"order_id": "1"})
    for broken in ('{"action": "say"', '["say"]', '{"action": "x"}', '{"action": "say", "text": 3}'):
        with pytest.raises(ReplyParseError):
            parse_action(broken)


def test_an_interrupted_agent_message_is_shown_to_the_model_as_heard(acme):
    state = {"entries": [{"role": "agent", "text": "Your refund is done and will arrive soon.", "interrupted": True,
                          "heard": "Your refund is"}]}
    [_, (role, content)] = render_messages(acme, state)
    assert role == "assistant" and "Your refund is [the caller interrupted you here]" in content
    assert "arrive soon" not in content
