"""The agent's turn logic with a scripted stand-in for the LLM: governance, tools, hand-off.

The stand-in replays the JSON replies a model would produce under the grammar, so these tests
pin the orchestrator's own behaviour exactly; tests/test_agent_llm_real.py runs the real model.
"""

import json

import pytest

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.conversation import heard_words, record_interruption, transcript
from parley.appliance.agent.kb import KnowledgeBase
from parley.appliance.agent.orchestrator import (
    NOT_UNDERSTOOD,
    AgentRunner,
    FirstToken,
    Handoff,
    Sentence,
    SentenceSplitter,
    ToolRun,
    TurnResult,
)
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.shop import fresh_copy, refunds_for
from scripted_model import ScriptedModel, call, say


@pytest.fixture
def acme(tmp_path):
    agent = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    fresh_copy(None, agent.tool_config["shop_db"])
    return agent


def runner_for(agent, *replies, audit=None):
    return AgentRunner(agent, ScriptedModel(*replies), knowledge=KnowledgeBase(), audit=audit)


def turn(runner, state, text):
    outputs = list(runner.respond(state, text, call_id="00000000-0000-0000-0000-000000000001"))
    assert isinstance(outputs[-1], TurnResult)
    return outputs[:-1], outputs[-1]


def greeted(runner):
    *_, result = runner.start("c")
    return result.state


def test_a_lookup_is_run_and_the_answer_streams_sentence_by_sentence(acme):
    runner = runner_for(acme, call("lookup_order", order_id="4512"),
                        say("Order 4512 was delivered. It had a kettle and two mugs."))
    outputs, result = turn(runner, greeted(runner), "Where is my order four five one two?")
    kinds = [type(o).__name__ for o in outputs]
    assert kinds == ["FirstToken", "Sentence", "ToolRun", "Sentence", "Sentence"]
    assert outputs[2].status == "ok" and outputs[2].result["status"] == "delivered"
    assert [o.text for o in outputs if isinstance(o, Sentence)] == ["Let me look that up.", "Order 4512 was delivered.",
                                                                   "It had a kettle and two mugs."]
    roles = [e["role"] for e in result.state["entries"]]
    assert roles == ["agent", "caller", "action", "result", "agent"]
    assert result.action == "listen" and result.text.startswith("Let me look that up. Order 4512")


def test_a_refund_waits_for_the_callers_yes_then_runs_once(acme):
    runner = runner_for(acme, call("lookup_order", order_id="4512"),
                        call("issue_refund", order_id="4512", amount=49.99, reason="kettle broken"))
    outputs, first = turn(runner, greeted(runner), "Refund the kettle on order 4512 please, it broke.")
    assert first.state["pending"]["tool"] == "issue_refund"
    assert "refund 49.99 dollars on order 4512" in first.text and first.text.endswith("Shall I go ahead?")
    assert refunds_for(acme.tool_config["shop_db"], "4512") == []

    outputs, second = turn(runner, first.state, "Yes, go ahead.")
    [run] = [o for o in outputs if isinstance(o, ToolRun)]
    assert run.status == "ok" and run.confirmed
    assert [r["amount_cents"] for r in refunds_for(acme.tool_config["shop_db"], "4512")] == [4999]
    assert second.text.startswith("Done. 49.99 dollars are refunded")
    assert second.state["pending"] is None


def test_a_no_to_the_read_back_runs_nothing_and_tells_the_model(acme):
    runner = runner_for(acme, call("lookup_order", order_id="4512"),
                        call("issue_refund", order_id="4512", amount=64.97, reason="changed mind"),
                        say("No problem. What would you like instead?"))
    _, first = turn(runner, greeted(runner), "I want a refund on order 4512.")
    _, second = turn(runner, first.state, "No, wait, not the whole order.")
    assert refunds_for(acme.tool_config["shop_db"], "4512") == []
    assert any(e["role"] == "note" and "did not agree" in e["text"] for e in second.state["entries"])
    assert second.text == "No problem. What would you like instead?"


def test_an_unclear_answer_to_the_read_back_asks_again_through_the_model(acme):
    runner = runner_for(acme, call("lookup_order", order_id="4512"),
                        call("issue_refund", order_id="4512", amount=49.99, reason="broken"), "unclear")
    _, first = turn(runner, greeted(runner), "Refund order 4512.")
    _, second = turn(runner, first.state, "Hmm, the kettle I mean.")
    assert second.state["pending"] is not None and second.text.startswith("Sorry, was that a yes?")
    assert runner.engine.prompts[-1].rstrip().endswith("<|im_start|>assistant")


def test_an_order_number_the_caller_never_said_is_refused(acme):
    runner = runner_for(acme, call("lookup_order", order_id="1234"), say("Could you tell me your order number?"))
    outputs, result = turn(runner, greeted(runner), "I want to know where my order is.")
    [run] = [o for o in outputs if isinstance(o, ToolRun)]
    assert run.status == "refused" and "never said order_id" in run.message
    assert result.state["failed_attempts"] == 1
    assert result.text == "Let me look that up. Could you tell me your order number?"
    assert "Let me look" not in str(result.state["entries"]), "the filler is spoken, not shown to the model"


def test_a_refund_before_the_lookup_is_refused_and_the_model_looks_up_first(acme):
    runner = runner_for(acme, call("issue_refund", order_id="4512", amount=10.0, reason="late"),
                        call("lookup_order", order_id="4512"),
                        call("issue_refund", order_id="4512", amount=10.0, reason="late"))
    outputs, result = turn(runner, greeted(runner), "Refund ten dollars on 4512, it was late.")
    runs = [o for o in outputs if isinstance(o, ToolRun)]
    assert [(r.name, r.status) for r in runs] == [("issue_refund", "refused"), ("lookup_order", "ok")]
    assert "call lookup_order" in runs[0].message
    assert result.state["pending"]["tool"] == "issue_refund"


def test_a_refund_above_the_refundable_amount_is_refused_by_policy(acme):
    runner = runner_for(acme, call("lookup_order", order_id="5067"),
                        call("issue_refund", order_id="5067", amount=153.0, reason="all"),
                        say("I can refund at most 129 dollars on that order."))
    outputs, result = turn(runner, greeted(runner), "Refund everything on order 5067.")
    refused = [o for o in outputs if isinstance(o, ToolRun) and o.status == "refused"]
    assert refused and "more than refundable 129.0" in refused[0].message
    assert result.state["pending"] is None


def test_three_failed_attempts_hand_the_call_to_a_person_with_a_summary(acme):
    handoff = {"summary": "Caller wanted an order looked up but gave no number.",
               "data": {"order_id": None, "request": "order status", "caller_sentiment": "frustrated"}}
    runner = runner_for(acme, *[call("lookup_order", order_id="9999")] * 3, handoff)
    outputs, result = turn(runner, greeted(runner), "Where is my stuff?")
    [record] = [o for o in outputs if isinstance(o, Handoff)]
    assert result.action == "transfer" and result.state["outcome"] == "transferred"
    assert record.reason == "3 failed attempts" and record.summary.startswith("Caller wanted")
    assert record.collected["request"] == "order status"
    assert "caller: Where is my stuff?" in record.transcript


def test_a_reply_cut_off_mid_json_is_not_spoken_and_counts_as_a_failed_attempt(acme):
    runner = runner_for(acme, '{"action": "lookup_order", "arguments": {"order_')
    outputs, result = turn(runner, greeted(runner), "Order 4512 please.")
    assert [o.text for o in outputs if isinstance(o, Sentence)] == ["Let me look that up.",
                                                                   NOT_UNDERSTOOD.split(". ")[0] + ".",
                                                                   "Could you say it again?"]
    assert result.state["failed_attempts"] == 1 and result.action == "listen"


def test_a_tool_error_becomes_a_sentence_the_model_can_speak(acme):
    runner = runner_for(acme, call("lookup_order", order_id="0000"), say("I couldn't find order 0000."))
    outputs, result = turn(runner, greeted(runner), "My order is 0000.")
    [run] = [o for o in outputs if isinstance(o, ToolRun)]
    assert run.status == "error" and run.message
    assert result.state["entries"][-2]["message"] == run.message


def test_end_call_says_goodbye_and_ends(acme):
    runner = runner_for(acme, call("end_call"))
    _, result = turn(runner, greeted(runner), "That's all, bye!")
    assert result.action == "end_call" and result.text == acme.goodbye and result.state["outcome"] == "ended"


def test_every_tool_call_and_result_reaches_the_audit_log(acme):
    entries = []
    runner = runner_for(acme, call("lookup_order", order_id="4512"), say("Found it."),
                        audit=lambda *entry: entries.append(entry))
    turn(runner, greeted(runner), "Order 4512.")
    assert [(action, subject.split("/")[1]) for action, subject, _ in entries] == [
        ("tool.call", "lookup_order"), ("tool.result", "lookup_order")]


def test_the_prompt_of_a_turn_extends_the_prompt_of_the_turn_before():
    agent = load_agent(ACME_DIR, variables={"var": "/tmp"})
    runner = AgentRunner(agent, ScriptedModel(say("Sure, what's the number?"), say("Thanks.")), knowledge=KnowledgeBase())
    _, first = turn(runner, greeted(runner), "I have a question about an order.")
    turn(runner, first.state, "It is 4512.")
    one, two = runner.engine.prompts
    assert two.startswith(one.removesuffix("<|im_start|>assistant\n")), "the cached prefix must stay byte-identical"
    assert two.startswith(runner.system_prompt())


def test_knowledge_chunks_enter_the_context_once_and_are_reported_on_the_turn(acme):
    runner = AgentRunner(acme, ScriptedModel(say("Within 30 days."), say("Yes.")))
    _, first = turn(runner, greeted(runner), "Can I send back a kettle I bought two weeks ago?")
    assert "returns-policy.md#1" in first.kb_chunk_ids
    _, second = turn(runner, first.state, "Can I send back a kettle I bought two weeks ago?")
    assert second.kb_chunk_ids == ()


@pytest.mark.parametrize("pieces, expected", [
    (["Hello Mr. Smith. Your order ", "is 39.99 dollars! Is that ", "ok? Bye"], ["Hello Mr. Smith.",
                                                                               "Your order is 39.99 dollars!",
                                                                               "Is that ok?", "Bye"]),
    (["No end"], ["No end"]),
    (["A. B. Smith called. Yes."], ["A. B. Smith called.", "Yes."]),
])
def test_sentences_are_cut_as_soon_as_they_end(pieces, expected):
    splitter = SentenceSplitter()
    out = [s for piece in pieces for s in splitter.feed(piece)] + splitter.flush()
    assert out == expected


@pytest.mark.parametrize("pieces, expected", [
    (["I'm sorry to hear ", "that, let me check, ", "shall I? Yes, of course."],
     ["I'm sorry to hear that,", "let me check, shall I?", "Yes, of course."]),
    (["Sure, I can help with that. Order 4512, ", "the kettle, is here."],
     ["Sure, I can help with that.", "Order 4512, the kettle, is here."]),
    (["Your total was 1,250 dollars ", "and 10:30 is fine - see you then."],
     ["Your total was 1,250 dollars and 10:30 is fine -", "see you then."]),
    (["Yes. Well, that is a long story, indeed."], ["Yes.", "Well, that is a long story, indeed."]),
])
def test_the_first_piece_of_a_reply_may_end_at_a_clause_of_four_words_or_more(pieces, expected):
    splitter = SentenceSplitter()
    out = [s for piece in pieces for s in splitter.feed(piece)] + splitter.flush()
    assert out == expected


def test_without_a_first_clause_the_reply_is_cut_at_sentences_only():
    splitter = SentenceSplitter(first_clause_words=0)
    assert splitter.feed("I'm sorry to hear that, let me check. ") == []
    assert splitter.feed("Done") == ["I'm sorry to hear that, let me check."] and splitter.flush() == ["Done"]


def test_an_interrupted_message_keeps_only_the_words_heard():
    sentences = [("Your refund is done.", 0, 8000), ("It will arrive in five to seven days.", 8000, 20000)]
    assert heard_words(sentences, 4000) == "Your refund"
    assert heard_words(sentences, 14000) == "Your refund is done. It will arrive in"
    assert heard_words(sentences, 20000) == "Your refund is done. It will arrive in five to seven days."
    state = {"entries": [{"role": "agent", "text": "Your refund is done. It will arrive in five to seven days."}]}
    record_interruption(state, heard_words(sentences, 4000))
    assert state["entries"][0]["heard"] == "Your refund" and "[interrupted]" in transcript(state)


def explode(context, order_id):
    raise RuntimeError("database on fire")


def test_a_tool_that_crashes_is_apologised_for_and_the_call_goes_on(tmp_path):
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "agent.yaml").write_text(
        "name: fragile\nfirst_message: Hi.\nprompt: {role: You help.}\n"
        "tools:\n  - name: lookup_order\n    description: Look up.\n    handler: test_agent_orchestrator:explode\n"
        "    parameters: parley.appliance.demo.shop:LOOKUP_ORDER_PARAMETERS\n")
    runner = runner_for(load_agent(folder), call("lookup_order", order_id="4512"),
                        say("Sorry, something went wrong while I was checking. Shall I try again?"))
    outputs, result = turn(runner, greeted(runner), "Order 4512 please.")
    [run] = [o for o in outputs if isinstance(o, ToolRun)]
    assert run.status == "error" and run.message.startswith("Sorry, something went wrong")
    assert result.action == "listen" and result.text.startswith("Sorry")
    assert result.state["failed_attempts"] == 1


def test_the_hand_off_line_is_said_once_as_soon_as_the_model_chooses_to_transfer(acme):
    handoff = {"summary": "Angry caller asked for a person.", "data": {"order_id": None, "request": "a person",
                                                                        "caller_sentiment": "angry"}}
    runner = runner_for(acme, call("transfer_to_human", reason="caller asked for a person"), handoff)
    outputs, result = turn(runner, greeted(runner), "Get me a human, now!")
    kinds = [type(o).__name__ for o in outputs]
    assert kinds.index("Sentence") < kinds.index("Handoff")
    assert result.text == acme.transfer_message and result.action == "transfer"


def test_after_a_refused_tool_the_model_may_not_go_silent(acme):
    runner = runner_for(acme, call("issue_refund", order_id="1001", amount=10, reason="x"),
                        say("Could you tell me your order number?"))
    _, result = turn(runner, greeted(runner), "I want my money back for the kettle.")
    first, second = runner.engine.grammars
    assert "skip_turn" in json.dumps(first) and "skip_turn" not in json.dumps(second)
    assert result.text == "Could you tell me your order number?"
