"""``from_caller`` for arguments of several words: an address the model writes must be one the caller said.

The model writes "12 Harbor Rd, Portland, ME 04101"; the transcript says "twelve Harbor Road in
Portland, Maine, zero four one zero one". The words must match, in order, whatever the spelling;
one word the caller never said refuses the call.
"""

import pytest

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.conversation import new_state
from parley.appliance.agent.caller_words import unsaid_words
from parley.appliance.agent.governance import PolicyRefusal, check_call, said_by_caller
from parley.appliance.demo import ACME_DIR

ADDRESS = "12 Harbor Rd, Portland, ME 04101"


def caller_said(*texts):
    state = new_state()
    for text in texts:
        state["entries"].append({"role": "agent", "text": "What's the new address?"})
        state["entries"].append({"role": "caller", "text": text})
    return state


def test_an_address_said_in_words_matches_the_address_written_with_digits_and_abbreviations():
    state = caller_said("It's twelve Harbor Road in Portland, Maine, zero four one zero one.")
    assert said_by_caller(state, ADDRESS)
    assert unsaid_words(state, ADDRESS) == []


def test_case_and_punctuation_do_not_count():
    state = caller_said("12 HARBOR road portland maine 04101")
    assert said_by_caller(state, "12 Harbor Road, Portland, Maine 04101.")


@pytest.mark.parametrize("spoken, written", [
    ("twelve Harbor Road", "12 Harbor Rd"),
    ("twenty one Harbor Road", "21 Harbor Rd"),
    ("one hundred and five Harbor Road", "105 Harbor Rd"),
    ("one oh five Harbor Road", "105 Harbor Rd"),
    ("one two Harbor Road", "12 Harbor Rd"),
    ("nineteen twenty Harbor Road", "1920 Harbor Rd"),
    ("the twenty first Street", "21st St"),
], ids=["teen", "tens", "hundred-and", "oh-as-zero", "digit-by-digit", "in-pairs", "ordinal"])
def test_numbers_compare_as_digits_however_they_were_said(spoken, written):
    assert said_by_caller(caller_said(spoken), written)


@pytest.mark.parametrize("spoken, written", [
    ("Harbor Street", "Harbor St"), ("Harbor Road", "Harbor Rd"), ("Harbor Avenue", "Harbor Ave"),
    ("Harbor Boulevard", "Harbor Blvd"), ("Harbor Lane", "Harbor Ln"), ("Harbor Drive", "Harbor Dr"),
    ("Harbor Court", "Harbor Ct"), ("Harbor Place", "Harbor Pl"), ("apartment 4", "Apt 4"),
    ("suite 200", "Ste 200"), ("number 9 Harbor", "No 9 Harbor"), ("North Harbor Road", "N Harbor Rd"),
    ("twelve West Elm", "12 W Elm"), ("Portland, Maine", "Portland, ME"), ("Sacramento, California", "Sacramento, CA"),
    ("Albany, New York", "Albany, NY"), ("Albany, NY", "Albany, New York"), ("Harbor Rd", "Harbor Road"),
])
def test_street_unit_direction_and_state_abbreviations_stand_for_their_words(spoken, written):
    assert said_by_caller(caller_said(spoken), written)


def test_a_state_code_counts_only_in_capitals():
    state = caller_said("Twelve Harbor Road for me")
    assert not said_by_caller(state, "12 Harbor Rd, ME")
    assert unsaid_words(state, "12 Harbor Rd, ME") == ["ME"]
    assert not said_by_caller(caller_said("twelve Harbor Road, West Virginia"), "12 Harbor Rd, VA")


def test_a_spelt_postcode_matches_the_written_one_whatever_the_spacing():
    assert said_by_caller(caller_said("Flat two, L S one four A B"), "Flat 2, LS1 4AB")
    assert said_by_caller(caller_said("flat 2, LS14AB"), "Flat 2, LS1 4AB")
    assert said_by_caller(caller_said("Portland, Maine, oh four one oh one"), "Portland, ME 04101")


def test_a_postcode_with_one_character_changed_is_not_said():
    state = caller_said("Flat two, L S one four A B")
    assert unsaid_words(state, "Flat 2, LS1 4AC") == ["LS1 4AC"]


def test_a_changed_house_number_is_not_said():
    state = caller_said("12 Harbor Road, Portland, Maine 04101.")
    assert unsaid_words(state, "112 Harbor Rd, Portland, ME 04101") == ["112"]
    assert unsaid_words(state, "13 Harbor Rd, Portland, ME 04101") == ["13"]


def test_a_number_is_not_found_inside_a_longer_one():
    assert unsaid_words(caller_said("one twelve Harbor Road"), "12 Harbor Rd") == ["12"]
    assert unsaid_words(caller_said("112 Harbor Road"), "12 Harbor Rd") == ["12"]


def test_a_digit_homophone_next_to_a_number_does_not_lengthen_it():
    assert said_by_caller(caller_said("Send it to 12 Harbor Road"), "12 Harbor Rd")


def test_a_digit_homophone_away_from_numbers_stays_a_word():
    assert unsaid_words(caller_said("Please send it to Harbor Road"), "2 Harbor Rd") == ["2"]
    assert said_by_caller(caller_said("Please send it to Harbor Road"), "to Harbor Rd")


def test_an_invented_town_is_not_said():
    state = caller_said("12 Harbor Road, Portland, Maine 04101.")
    assert unsaid_words(state, "12 Harbor Rd, Springfield, ME 04101") == ["Springfield"]


def test_a_different_zip_is_not_said():
    state = caller_said("twelve Harbor Road in Portland, Maine, zero four one zero one")
    assert unsaid_words(state, "12 Harbor Rd, Portland, ME 04102") == ["04102"]
    assert unsaid_words(state, "12 Harbor Rd, Portland, ME") == []


def test_words_out_of_order_are_not_said():
    state = caller_said("Portland, 12 Harbor Road")
    assert not said_by_caller(state, "12 Harbor Rd, Portland")
    assert unsaid_words(state, "12 Harbor Rd, Portland") == ["Portland"]


def test_an_address_given_over_two_turns_is_said():
    state = caller_said("It's twelve Harbor Road.", "Portland, Maine, and the zip code is zero four one zero one.")
    assert said_by_caller(state, ADDRESS)


def test_a_code_does_not_run_over_two_turns():
    state = caller_said("Portland, zero four one", "zero one")
    assert unsaid_words(state, "Portland 04101") == ["04101"]


def test_a_number_said_at_the_end_of_the_turn_before_does_not_hide_the_house_number():
    state = caller_said("I need to change the delivery address on order 7731.",
                        "12 Harbor Road, Portland, Maine 04101.")
    assert said_by_caller(state, ADDRESS)


def test_a_word_from_another_caller_turn_far_away_is_not_said():
    state = caller_said("Hi, I'm calling from Springfield about my order seven seven three one.",
                        "I'd like the delivery address changed, please.", "12 Harbor Road, Portland, Maine 04101.")
    assert unsaid_words(state, "12 Harbor Rd, Springfield, ME 04101") == ["Springfield"]
    assert not said_by_caller(state, "Springfield, 12 Harbor Rd")


def test_words_too_far_apart_are_not_one_address():
    state = caller_said("Harbor Road is where my sister lived when we were kids, now I live in Portland")
    assert not said_by_caller(state, "Harbor Rd, Portland")


def test_an_empty_value_is_never_said():
    state = caller_said("12 Harbor Road, Portland, Maine 04101.")
    assert not said_by_caller(state, "")
    assert not said_by_caller(state, "   ")
    assert not said_by_caller(state, ", ,")


def test_order_numbers_and_single_words_match_as_before():
    state = caller_said("Where is my order four five one two? I live in Portland.")
    assert said_by_caller(state, "4512")
    assert said_by_caller(state, "portland")
    assert not said_by_caller(state, "4513")


@pytest.fixture
def change_address(tmp_path):
    return load_agent(ACME_DIR, variables={"var": str(tmp_path)}).tool("change_delivery_address")


def looked_up(*texts):
    state = caller_said(*texts)
    state["entries"] += [{"role": "action", "tool": "lookup_order", "arguments": {"order_id": "7731"}},
                         {"role": "result", "tool": "lookup_order", "arguments": {"order_id": "7731"}, "status": "ok",
                          "result": {"order_id": "7731", "status": "processing"}}]
    return state


def test_acme_changes_an_address_only_to_one_the_caller_said(change_address):
    state = looked_up("I need to change the delivery address on order 7731.",
                      "twelve Harbor Road in Portland, Maine, zero four one zero one")
    assert "new_address" in change_address.policy.from_caller
    assert check_call(change_address, {"order_id": "7731", "new_address": ADDRESS}, state) is None

    with pytest.raises(PolicyRefusal) as refused:
        check_call(change_address, {"order_id": "7731", "new_address": "12 Harbor Rd, Portland, ME 04102"}, state)
    assert refused.value.code == "not_from_caller"
    assert refused.value.message == ("the caller never said new_address '12 Harbor Rd, Portland, ME 04102' "
                                     "(not said: 04102): ask the caller for it, do not guess")
