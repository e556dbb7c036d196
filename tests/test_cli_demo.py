"""`parley demo`'s printouts: the after-call evaluation and the latency table (the calls
themselves: tests/test_voice_loop.py)."""

from types import SimpleNamespace

from rich.console import Console

from parley.appliance.bus import BusError
from parley.appliance.cli.demo import evaluate, print_latency
from parley.appliance.media.call_session import TurnRecord


class Placer:
    def __init__(self, fail=False):
        self.fail = fail

    def evaluate(self, call_id):
        if self.fail:
            raise BusError("no evaluator")
        return {"criteria": {"resolved": "success", "no_invented_facts": "failure"},
                "data": {"order_id": "4512", "refund_amount": None}}


def printed(placer):
    console = Console(record=True, width=200)
    call = SimpleNamespace(name="refund")
    evaluate(console, placer, [(call, SimpleNamespace(call_id="c-1"))])
    return console.export_text()


def test_each_call_is_shown_with_its_criteria_and_the_data_collected():
    out = printed(Placer())
    assert "refund: resolved success, no_invented_facts failure; data: order_id='4512'" in out
    assert "refund_amount" not in out


def test_an_evaluator_that_fails_is_reported_not_fatal():
    assert "refund: not evaluated" in printed(Placer(fail=True))


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
