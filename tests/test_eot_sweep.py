"""The eot-bench style scoring in scripts/evaluate_turn_taking.py, on tiny synthetic spans."""

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_turn_taking.py"
_spec = importlib.util.spec_from_file_location("evaluate_turn_taking", _PATH)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def test_confident_score_ends_the_turn_at_the_action_delay():
    assert sweep.span_decision_ms(math.inf, 0.8, 0.5, 200, 1000) == 200


def test_unconfident_score_waits_for_the_timeout():
    assert sweep.span_decision_ms(math.inf, 0.2, 0.5, 200, 1000) == 1000


def test_timeout_shorter_than_the_action_delay_wins():
    assert sweep.span_decision_ms(math.inf, 0.99, 0.5, 500, 300) == 300


def test_hold_shorter_than_the_decision_never_ends_the_turn():
    assert sweep.span_decision_ms(150, None, 0.5, 200, 300) is None
    assert sweep.span_decision_ms(250, 0.1, 0.5, 200, 300) is None
    assert sweep.span_decision_ms(250, 0.9, 0.5, 200, 300) == 200
    assert sweep.span_decision_ms(300, 0.1, 0.5, 200, 300) is None  # ends exactly as speech resumes


def test_vad_only_policy_ignores_scores():
    assert sweep.span_decision_ms(math.inf, 1.0, math.inf, 100, 700) == 700


def test_score_policy_counts_cutoffs_per_hold_and_latency_per_eot():
    spans = [(400, False, {200: 0.9}), (500, False, {200: 0.1}), (math.inf, True, {200: 0.6}),
             (math.inf, True, {200: 0.4})]
    rate, latencies = sweep.score_policy(spans, 0.5, 200, 600)
    assert rate == pytest.approx(0.5)  # the 400 ms hold is cut at 200; the 500 ms one ends before the 600 ms timeout
    assert latencies.tolist() == [200, 600]


def test_operating_points_take_the_best_policy_within_each_budget():
    points = [(0.50, 300), (0.20, 600), (0.08, 900), (0.04, 1200)]
    ops = sweep.operating_points(points)
    assert ops[("cutoff@", 300)] == 0.50
    assert ops[("cutoff@", 600)] == 0.20
    assert ops[("latency@", 0.05)] == 1200
    assert ops[("latency@", 0.10)] == 900
    assert sweep.operating_points([(0.5, 900)])[("cutoff@", 300)] is None


def test_pareto_frontier_drops_dominated_policies():
    points = [(0.5, 300), (0.6, 400), (0.2, 600), (0.2, 700), (0.1, 900)]
    assert sweep.pareto_frontier(points) == [0, 2, 4]


def test_score_auc():
    assert sweep.score_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert sweep.score_auc([0.5], [0.5]) == 0.5
    assert math.isnan(sweep.score_auc([], [0.1]))


def test_issue_pauses_are_the_holds_of_400_to_900_ms_inclusive():
    spans = [(399, False, {}), (400, False, {}), (900, False, {}), (901, False, {}), (math.inf, True, {})]
    assert [span[0] for span in sweep.issue_pauses(spans)] == [400, 900]


def test_issue_figures_count_pauses_cut_and_the_median_delay_after_complete_turns():
    spans = [(600, False, {100: 0.95}), (700, False, {100: 0.2}), (300, False, {100: 0.99}),
             (math.inf, True, {100: 0.95}), (math.inf, True, {100: 0.1}), (math.inf, True, {100: 0.92})]
    median, _, cut, pauses = sweep.issue_figures(spans, 0.9, 100, 800)
    assert (median, cut, pauses) == (100, 1, 2)  # the 300 ms hold is cut too, but it is not one of the issue's pauses


def test_the_issue_policy_trades_pauses_cut_against_delay_within_each_budget():
    # Smart Turn is sure about both complete turns and unsure about the pause: early ends cost nothing.
    spans = [(600, False, {d: 0.1 for d in sweep.ACOUSTIC_ACTION_DELAYS_MS}),
             (math.inf, True, {d: 0.95 for d in sweep.ACOUSTIC_ACTION_DELAYS_MS}),
             (math.inf, True, {d: 0.95 for d in sweep.ACOUSTIC_ACTION_DELAYS_MS})]
    chosen = sweep.issue_policies(spans)
    (threshold, delay, timeout), fits = chosen["cut"]
    assert fits and delay == 100 and timeout >= 600  # a shorter timeout would cut the 600 ms pause
    assert chosen["delay"][1] and sweep.issue_figures(spans, *chosen["delay"][0])[2] == 0


def test_the_issue_policy_says_when_no_policy_fits_the_budget():
    # Smart Turn calls a 900 ms pause complete at every action delay: every policy ends the turn in it.
    spans = [(900, False, {d: 0.99 for d in sweep.ACOUSTIC_ACTION_DELAYS_MS}),
             (math.inf, True, {d: 0.01 for d in sweep.ACOUSTIC_ACTION_DELAYS_MS})]
    chosen = sweep.issue_policies(spans)
    assert chosen["cut"][1] is False and sweep.issue_figures(spans, *chosen["cut"][0])[2] == 1
    assert chosen["delay"][1] is True and sweep.issue_figures(spans, *chosen["delay"][0])[0] <= 350


def test_the_transcript_vetoes_scores_from_its_delay_on_where_the_words_sound_unfinished():
    spans = [[(600, False, {100: 0.95, 200: 0.97}), (math.inf, True, {100: 0.9, 200: 0.92})],
             [(50, False, {}), (math.inf, True, {100: 0.3, 200: 0.96})]]
    texts = [["My order number is", "My order number is 4512."], [None, "Thank you."]]
    vetoed = sweep.with_transcript_veto(spans, texts, delay_ms=200)
    assert vetoed[0][0][2] == {100: 0.95, 200: 0.0}, "unfinished words: no early end from their delay on"
    assert vetoed[0][1][2] == {100: 0.9, 200: 0.92}
    assert vetoed[1][0][2] == {} and vetoed[1][1][2] == {100: 0.3, 200: 0.96}
    # The policy at 200 ms now waits out the pause but still ends both complete turns early.
    rate, latencies = sweep.score_policy([s for turn in vetoed for s in turn], 0.9, 200, 800)
    assert rate == 0.0 and latencies.tolist() == [200, 200]


def test_a_span_the_transcript_never_reached_keeps_only_the_scores_before_it():
    vetoed = sweep.with_transcript_veto([[(150, False, {100: 0.99, 200: 0.99})]], [[None]], delay_ms=200)
    assert vetoed[0][0][2] == {100: 0.99}


def test_with_a_words_model_each_span_becomes_the_stages_verdict_from_the_words_on():
    from parley.core.acoustic_turn import AcousticTurnSettings

    per_turn = [[(600, False, {100: 0.95, 200: 0.95}), (700, False, {100: 0.5}), (80, False, {}),
                 (math.inf, True, {100: 0.5, 300: 0.02})]]
    texts = [["My order number is", "I ordered a kettle.", None, "Thank you."]]
    p_words = [[0.9, 0.3, None, 0.15]]
    weighing = AcousticTurnSettings(text_threshold=-1.75, smart_turn_weight=0.25)
    [weighed] = sweep.with_words_model(per_turn, texts, p_words, weighing)
    assert weighed[0][2] == {100: 0.0, 200: 0.0}            # the string rules veto, however sure the rest
    assert weighed[1][2] == {100: 1.0}                      # log-odds -0.85 >= -1.75
    assert weighed[2][2] == {}                              # too short to be transcribed: nothing to decide on
    assert weighed[3][2] == {100: 1.0, 300: 0.0}            # -1.73; -1.73 + 0.25 * -3.89 = -2.71
    assert [span[:2] for span in weighed] == [span[:2] for span in per_turn[0]]


def test_read_twice_a_span_ends_the_turn_only_when_the_words_up_to_the_end_of_speech_say_so_too():
    from parley.core.acoustic_turn import AcousticTurnSettings

    per_turn = [[(600, False, {100: 0.9}), (500, False, {100: 0.9}), (math.inf, True, {100: 0.9})]]
    texts = [["I'd like to book an appointment with you.", "I ordered a kettle.", "Thank you."]]
    p_words = [[0.4, 0.3, 0.5]]
    speech_end = [[("I'd like to book an appointment with", 0.02, 150.0), ("I ordered a kettle.", 0.3, 150.0),
                   ("Thank you", 0.1, 150.0)]]
    [once] = sweep.with_words_model(per_turn, texts, p_words, AcousticTurnSettings())
    [twice] = sweep.with_words_model(per_turn, texts, p_words, AcousticTurnSettings(), speech_end=speech_end)
    [off] = sweep.with_words_model(per_turn, texts, p_words, AcousticTurnSettings(reread_at_speech_end=False),
                                   speech_end=speech_end)
    assert [s[2][100] for s in once] == [1.0, 1.0, 1.0]
    assert [s[2][100] for s in twice] == [0.0, 1.0, 0.0]    # "with" is open; log-odds -2.20 < -1.5
    assert off == once

def test_counted_with_compute_a_verdict_lands_late_and_one_after_the_pause_cuts_nothing():
    from parley.core.acoustic_turn import AcousticTurnSettings

    kinds = [("cut", "cut", "eot"), ("eot",), ("eot",)]
    per_turn = [[(450, False, {}), (800, False, {}), (math.inf, True, {})], [(math.inf, True, {})],
                [(math.inf, True, {})]]
    texts = [["I ordered a kettle.", "I ordered a kettle.", "Thank you."], ["Bye."], ["Yes."]]
    p_words = [[0.5, 0.5, 0.5], [0.5], [0.5]]
    speech_end = [[("I ordered a kettle.", 0.5, 300.0), ("I ordered a kettle.", 0.5, 100.0), ("Thank you.", 0.5, 900.0)],
                  [("Bye", 0.01, 100.0)], [("Yes.", 0.5, 100.0)]]
    transcribe_ms = [[100.0, 100.0, 100.0], [100.0], [100.0]]
    latencies, pauses = sweep.timed_decisions(kinds, per_turn, texts, p_words, speech_end, AcousticTurnSettings(),
                                              transcribe_ms, 20.0)
    # 100 + 100 + 20 + 300 = 520 ms: after the 450 ms pause ended (no cut), inside the 800 ms one (cut at 320).
    assert pauses == [(450, 520.0), (800, 320.0)]
    # Later than the hangover: the hangover ends it; the second reading says "not yet": so does the hangover.
    assert list(latencies) == [900, 900, 320.0]


def test_counted_with_compute_two_readings_at_once_wait_for_the_slower_only():
    from parley.core.acoustic_turn import AcousticTurnSettings

    kinds, per_turn = [("eot",)], [[(math.inf, True, {})]]
    texts, p_words, transcribe_ms = [["Thank you."]], [[0.5]], [[150.0]]
    speech_end = [[("Thank you.", 0.5, 120.0)]]
    for concurrent, landed in ((False, 100 + 150 + 20 + 120), (True, 100 + 150 + 20)):
        latencies, _ = sweep.timed_decisions(kinds, per_turn, texts, p_words, speech_end,
                                             AcousticTurnSettings(concurrent_readings=concurrent), transcribe_ms, 20.0)
        assert list(latencies) == [landed]
