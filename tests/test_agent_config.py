"""The agent file: the embedded Acme agent loads, and every kind of mistake names its field."""

import textwrap

import pytest

from parley.appliance.agent.config import AgentFileError, load_agent
from parley.appliance.demo import ACME_DIR

MINIMAL = """\
name: shop
first_message: Hello!
prompt:
  role: You help.
"""


def write_agent(tmp_path, text):
    (tmp_path / "agent.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def error_for(tmp_path, text):
    with pytest.raises(AgentFileError) as caught:
        load_agent(write_agent(tmp_path, text), variables={"var": "/v"})
    return caught.value


def test_the_embedded_acme_agent_loads_with_its_tools_policies_and_criteria():
    agent = load_agent(ACME_DIR, variables={"var": "/srv/parley/var"})
    assert agent.name == "acme"
    assert [t.name for t in agent.tools] == ["lookup_order", "issue_refund", "change_delivery_address"]
    refund = agent.tool("issue_refund")
    assert refund.side_effects and "{amount}" in refund.policy.confirm
    assert refund.policy.requires == "lookup_order"
    assert dict(refund.policy.limits) == {"amount": "lookup_order.refundable"}
    assert agent.tool_config["shop_db"] == "/srv/parley/var/acme/shop.sqlite"
    assert list(agent.prompt)[:3] == ["role", "style", "scope"]
    assert {c.id for c in agent.evaluation_criteria} >= {"resolved", "no_invented_facts"}


def test_a_minimal_agent_gets_the_documented_defaults(tmp_path):
    agent = load_agent(write_agent(tmp_path, MINIMAL))
    assert agent.llm.model == "llm-qwen2.5-coder-1.5b" and agent.llm.temperature == 0.0
    assert agent.tools == () and agent.escalation.max_failed_attempts == 3
    assert agent.endpointer.hangover_ms > 0


@pytest.mark.parametrize("text, field, words", [
    ("name: shop\nprompt: {role: x}\n", "first_message", "is required"),
    (MINIMAL + "colour: blue\n", "colour", "unknown field"),
    (MINIMAL + "llm: {temperature: 9}\n", "llm.temperature", "between 0.0 and 2.0"),
    (MINIMAL + "llm: {max_tokens: lots}\n", "llm.max_tokens", "an integer"),
    (MINIMAL + "turn_taking: {hangover_ms: 100, short_silence_ms: 300}\n", "turn_taking", "short_silence_ms"),
    (MINIMAL + "tools: [{name: end_call, description: d, handler: 'a:b', parameters: {type: object}}]\n",
     "tools[0].name", "built-in system tool"),
    (MINIMAL + "tools: [{name: pay, description: d, handler: nocolon, parameters: {type: object}}]\n",
     "tools[0].handler", "package.module:function"),
    (MINIMAL + "tools: [{name: pay, description: d, handler: 'a:b', parameters: {type: string}}]\n",
     "tools[0].parameters", "type object"),
    (MINIMAL + "tools: [{name: pay, description: d, handler: 'a:b', parameters: {type: object}, side_effects: true}]\n",
     "tools[0].policy.confirm", "needs a confirmation read-back"),
    (MINIMAL + "tools: [{name: pay, description: d, handler: 'a:b', side_effects: true,\n"
               "  parameters: {type: object, properties: {amount: {type: number}}},\n"
               "  policy: {confirm: 'Pay {sum}?'}}]\n", "tools[0].policy.confirm", "{sum} is not an argument"),
    (MINIMAL + "tools: [{name: pay, description: d, handler: 'a:b',\n"
               "  parameters: {type: object, properties: {amount: {type: number}}},\n"
               "  policy: {requires: look, limits: {amount: look.max}}}]\n", "tools[0].policy.requires", "no tool named look"),
    (MINIMAL + "tool_config: {db: '{nowhere}/x'}\n", "tool_config.db", "unknown placeholder"),
    (MINIMAL + "evaluation_criteria: [{id: ok, description: a}, {id: ok, description: b}]\n",
     "evaluation_criteria[1].id", "a second entry"),
    (MINIMAL + "data_collection: [{id: n, type: date, description: d}]\n", "data_collection[0].type", "string, number"),
])
def test_a_broken_agent_file_names_the_field_and_the_fix(tmp_path, text, field, words):
    error = error_for(tmp_path, text)
    assert error.field_path == field
    assert words in str(error) and str(tmp_path / "agent.yaml") in str(error)


def test_yaml_that_does_not_parse_reports_the_line(tmp_path):
    error = error_for(tmp_path, "name: shop\nprompt: [unclosed\n")
    assert "not valid YAML at line" in str(error)


def test_a_folder_without_an_agent_file_is_refused(tmp_path):
    with pytest.raises(AgentFileError, match="no agent file here"):
        load_agent(tmp_path)


def test_parameters_can_name_a_schema_in_python_and_a_missing_one_is_an_error(tmp_path):
    good = MINIMAL + ("tools: [{name: look, description: d, handler: 'parley.appliance.demo.shop:lookup_order',\n"
                      "  parameters: 'parley.appliance.demo.shop:LOOKUP_ORDER_PARAMETERS'}]\n")
    agent = load_agent(write_agent(tmp_path, good))
    assert agent.tool("look").parameters["required"] == ["order_id"]
    error = error_for(tmp_path, good.replace("LOOKUP_ORDER_PARAMETERS", "NOPE"))
    assert error.field_path == "tools[0].parameters"


def test_quality_bars_and_testing_settings_are_read_and_checked(tmp_path):
    agent = load_agent(ACME_DIR, variables={"var": "/v"})
    assert agent.quality.completion_criterion == "resolved" and agent.quality.suite_pass_rate == 0.8
    assert {c.id: c.threshold for c in agent.evaluation_criteria}["confirmed_before_acting"] == 0.95
    assert agent.testing.fixture == "parley.appliance.demo.shop:fresh_for_tests" and agent.testing.runs == 3
    criteria = "evaluation_criteria:\n  - {id: done, description: Done.}\n"
    assert error_for(tmp_path, MINIMAL + criteria + "quality: {completion_criterion: solved}\n").field_path == \
        "quality.completion_criterion"
    assert error_for(tmp_path, MINIMAL + "quality: {suite_pass_rate: 1.5}\n").field_path == "quality.suite_pass_rate"
    assert error_for(tmp_path, MINIMAL + "testing: {fixture: no_colon}\n").field_path == "testing.fixture"
    wrong = MINIMAL + "evaluation_criteria:\n  - {id: done, description: Done., threshold: high}\n"
    assert error_for(tmp_path, wrong).field_path == "evaluation_criteria[0].threshold"


def test_turn_eagerness_presets_the_endpointer_and_turn_taking_overrides_it(tmp_path):
    eager = load_agent(write_agent(tmp_path, MINIMAL + "conversation: {eagerness: eager}\n"))
    patient = load_agent(write_agent(tmp_path, MINIMAL + "conversation: {eagerness: patient}\n"
                                                         "turn_taking: {hangover_ms: 1500}\n"))
    assert eager.endpointer.hangover_ms < load_agent(write_agent(tmp_path, MINIMAL)).endpointer.hangover_ms
    assert patient.endpointer.hangover_ms == 1500 and patient.endpointer.min_speech_ms == 250
    assert error_for(tmp_path, MINIMAL + "conversation: {eagerness: hasty}\n").field_path == "conversation.eagerness"
    assert error_for(tmp_path, MINIMAL + "conversation: {max_call_s: 1}\n").field_path == "conversation.max_call_s"


def test_the_end_of_turn_is_acoustic_unless_the_agent_asks_for_silence_alone(tmp_path):
    assert load_agent(write_agent(tmp_path, MINIMAL)).conversation.end_of_turn == "acoustic"
    quiet = load_agent(write_agent(tmp_path, MINIMAL + "conversation: {end_of_turn: silence}\n"))
    assert quiet.conversation.end_of_turn == "silence"
    error = error_for(tmp_path, MINIMAL + "conversation: {end_of_turn: telepathy}\n")
    assert error.field_path == "conversation.end_of_turn" and "acoustic, silence" in str(error)


def test_the_head_start_is_on_unless_the_agent_turns_it_off(tmp_path):
    assert load_agent(write_agent(tmp_path, MINIMAL)).conversation.head_start is True
    off = load_agent(write_agent(tmp_path, MINIMAL + "conversation: {head_start: false, soft_timeout_ms: 900}\n"))
    assert off.conversation.head_start is False and off.conversation.soft_timeout_ms == 900
    error = error_for(tmp_path, MINIMAL + "conversation: {head_start: sometimes}\n")
    assert error.field_path == "conversation.head_start" and "true or false" in str(error)


def test_a_criterion_check_must_be_a_known_one(tmp_path):
    wrong = MINIMAL + "evaluation_criteria:\n  - {id: done, description: Done., check: vibes}\n"
    assert error_for(tmp_path, wrong).field_path == "evaluation_criteria[0].check"
    assert load_agent(ACME_DIR, variables={"var": "/v"}).evaluation_criteria[2].check == "side_effects_confirmed"
