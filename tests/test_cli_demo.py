"""`parley demo`'s printouts: the after-call evaluation and the latency table (the calls
themselves: tests/test_voice_loop.py)."""

from types import SimpleNamespace

from rich.console import Console

from parley.appliance.agent.config import load_agent
from parley.appliance.bus import BusError
from parley.appliance.cli.demo import evaluate, print_latency
from parley.appliance.demo import ACME_DIR
from parley.appliance.media.call_session import TurnRecord
from parley.appliance.platform.gate import record_judge_check
from parley.appliance.store import Store


class Placer:
    def __init__(self, tmp_path, fail=False):
        self.fail = fail
        self.agent = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
        self.settings = SimpleNamespace(db_path=tmp_path / "parley.db")

    def evaluate(self, call_id):
        if self.fail:
            raise BusError("no evaluator")
        return {"criteria": {"resolved": "success", "no_invented_facts": "failure", "confirmed_before_acting": "success"},
                "data": {"order_id": "4512", "refund_amount": None}}


def printed(placer):
    console = Console(record=True, width=200)
    call = SimpleNamespace(name="refund")
    evaluate(console, placer, [(call, SimpleNamespace(call_id="c-1"))])
    return console.export_text()


def checked_placer(tmp_path, *, agreed, kappa):
    """A placer whose judge's latest check agreed on ``agreed`` of 36 labelled calls."""
    placer = Placer(tmp_path)
    with Store.open(placer.settings.db_path) as store:
        record_judge_check(store, placer.agent.llm.model, agreed=agreed, items=36, kappa=kappa, set_sha256="0" * 64)
    return placer


def test_each_call_is_shown_with_its_criteria_and_the_data_collected(tmp_path):
    out = printed(checked_placer(tmp_path, agreed=34, kappa=0.89))
    assert ("refund: resolved success, no_invented_facts failure, confirmed_before_acting success; "
            "data: order_id='4512'") in out
    assert "refund_amount" not in out and "advisory" not in out


def test_results_of_a_judge_that_failed_its_check_are_shown_as_advisory(tmp_path):
    out = printed(checked_placer(tmp_path, agreed=19, kappa=0.06))
    assert ("refund: resolved success (advisory), no_invented_facts failure (advisory), "
            "confirmed_before_acting success;") in out, "a check of the record needs no judge"
    assert "19/36 labelled calls, kappa 0.06" in out


def test_results_of_a_judge_never_checked_are_shown_as_advisory(tmp_path):
    out = printed(Placer(tmp_path))
    assert "resolved success (advisory)" in out and "parley judge-check --model" in out


def test_an_evaluator_that_fails_is_reported_not_fatal(tmp_path):
    assert "refund: not evaluated" in printed(Placer(tmp_path, fail=True))


def latency_table(stt_final_ms):
    turn = TurnRecord(1)
    turn.spans.update({"user_speech_end": 0, "endpoint": 880_000_000, "stt_final": stt_final_ms * 1_000_000,
                       "playout_start": 1_500_000_000})
    console = Console(record=True, width=200)
    print_latency(console, [turn])
    return console.export_text()


def test_the_latency_table_says_why_the_words_came_before_the_endpoint():
    ahead = latency_table(320)
    assert "320" in ahead and "1500" in ahead and "head start" in ahead
    assert "head start" not in latency_table(1100)


def test_the_latency_table_shows_silence_inside_a_reply():
    turn = TurnRecord(1, playout_gap_ms=340)
    turn.spans.update({"user_speech_end": 0, "endpoint": 880_000_000, "playout_start": 1_500_000_000})
    console = Console(record=True, width=200)
    print_latency(console, [turn])
    row = next(line for line in console.export_text().splitlines() if "1500" in line)
    assert row.rstrip(" │").endswith("340")
