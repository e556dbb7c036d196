"""The voice loop end to end: real worker processes (Whisper, the Piper voice, the 1.5B LLM) over
the real bus, calls through the file channel in real time, the record in a real SQLite file."""

import logging
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.calls import ESCALATION, REFUND, check_goal
from parley.appliance.demo.shop import fresh_copy
from parley.appliance.media.file_channel import CallerLine, ScriptedCaller, read_wav
from parley.appliance.media.placer import CallPlacer
from parley.appliance.services import ServicePlan, Services
from parley.appliance.speech.stt import Recognizer, RecognizerSettings
from parley.appliance.store import Store

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, models_dir):
    for name in (("llm-qwen2.5-coder-1.5b",), ("whisper-tiny.en", "tiny.en-encoder.onnx"),
                 ("voice-en_US-joe-medium", "model.onnx"), ("silero-vad", "silero_vad.onnx")):
        fetched(models_dir, *name)
    var = tmp_path_factory.mktemp("var")
    previous = os.environ.get("PARLEY_VAR")
    os.environ["PARLEY_VAR"] = str(var)
    services = Services(ServicePlan(str(ACME_DIR)), settings=load_settings()).start()
    try:
        with CallPlacer(services, ACME_DIR) as placer:
            fresh_copy(None, placer.agent.tool_config["shop_db"])
            yield placer
    finally:
        services.stop()
        if previous is None:
            del os.environ["PARLEY_VAR"]
        else:
            os.environ["PARLEY_VAR"] = previous


@pytest.fixture(scope="module")
def slow_hangover(appliance, tmp_path_factory):
    """The demo agent waiting out a 3 s hangover: whether the words end a turn before the silence
    does then does not hang on how fast this machine transcribes them (``make bench`` and the
    evaluation measure that)."""
    folder = tmp_path_factory.mktemp("agents") / "acme"
    shutil.copytree(ACME_DIR, folder)
    with (folder / "agent.yaml").open("a") as agent_file:
        agent_file.write("\nturn_taking:\n  hangover_ms: 3000\n")
    with CallPlacer(appliance.services, folder) as placer:
        yield placer


@pytest.fixture(scope="module")
def engine(appliance, models_dir):
    """The agent's LLM in this process, for agent tests beside the workers' own copy."""
    from parley.appliance.agent.llm import LlamaEngine, find_model_file

    return LlamaEngine(find_model_file(models_dir, appliance.agent.llm.model))


@pytest.fixture(scope="module")
def recognizer(models_dir):
    return Recognizer.from_dir(models_dir / "whisper-tiny.en", RecognizerSettings(num_threads=2))


def store_of(placer):
    return Store.open(placer.settings.db_path)


def test_a_refund_call_reaches_its_goal_and_leaves_a_complete_record(appliance, recognizer):
    session, audio = appliance.place(ScriptedCaller(REFUND.lines, appliance.line_rate))
    with store_of(appliance) as store:
        reached, why = check_goal(REFUND, session, store, appliance.agent.tool_config["shop_db"])
        assert reached, why
        turns = store.turns(session.call_id)
        tools = store.tool_calls(session.call_id)
        answered = [t for t in turns if t.role == "agent" and "user_speech_end" in {s.name for s in store.spans(t.id)}]
        spans = {s.name for s in store.spans(answered[0].id)}
        audit = [row["action"] for row in store.db.query("SELECT action FROM audit_log")]
    assert [t.tool for t in tools][:1] == ["lookup_order"] and "issue_refund" in [t.tool for t in tools]
    assert [t.confirmed for t in tools if t.tool == "issue_refund"] == [True]
    assert spans == {"user_speech_end", "endpoint", "stt_final", "llm_first_token", "first_sentence",
                     "tts_first_audio", "playout_start"}
    assert {"tool.call", "tool.result"} <= set(audit)
    heard_back = recognizer.transcribe(audio.agent[: audio.rate * 8], audio.rate).text.lower()
    assert "thanks for calling" in heard_back and "refunds" in heard_back, \
        f"{heard_back} (silence inside the greeting: {session.turns[0].playout_gap_ms} ms)"


def test_after_a_barge_in_no_more_of_the_cut_reply_is_played(appliance):
    caller = ScriptedCaller(ESCALATION.lines, appliance.line_rate)
    session, audio = appliance.place(caller)
    greeting = session.turns[0]
    assert greeting.heard_text is not None and greeting.heard_text in appliance.agent.first_message
    assert len(greeting.heard_text) < len(appliance.agent.first_message)
    interrupt_at = caller.line_started_at[0]
    line_end = interrupt_at + caller.audio[0].shape[0]
    cut = audio.agent[interrupt_at + audio.rate * 400 // 1000: line_end]  # barge_in_min_ms and a frame after onset
    assert float(np.max(np.abs(cut))) < 1e-3, "agent audio of the cancelled turn kept playing"
    with store_of(appliance) as store:
        [turn] = [t for t in store.turns(session.call_id) if t.interrupted]
        assert turn.heard_text == greeting.heard_text
        reached, why = check_goal(ESCALATION, session, store, appliance.agent.tool_config["shop_db"])
    assert reached, why


def test_a_finished_sentence_ends_the_turn_on_the_words_before_the_hangover(slow_hangover, models_dir, caplog):
    # A recorded person saying "It was the best of times, it was the worst of times." (two_cities.wav,
    # 1.0-4.7 s), then waiting for the answer. SmolLM2 reads those words as a message that can end
    # (p 0.50); "it was the best of times", at the comma's pause, it does not (0.12).
    caplog.set_level(logging.DEBUG, logger="parley.core.acoustic_turn")
    appliance = slow_hangover
    recording = read_wav(fetched(models_dir, "two-cities", "two_cities.wav"), appliance.line_rate)
    said = recording[int(1.0 * appliance.line_rate): int(4.7 * appliance.line_rate)]
    caller = ScriptedCaller([CallerLine("It was the best of times, it was the worst of times.")], appliance.line_rate,
                            speak=lambda text, rate: said)
    session, _ = appliance.place(caller, max_seconds=40.0)
    turn = session.turns[1]
    waited_ms = (turn.spans["endpoint"] - turn.spans["user_speech_end"]) / 1e6
    assert turn.end_reason == "acoustic", (turn.end_reason, turn.caller_text)
    assert waited_ms < appliance.agent.endpointer.hangover_ms == 3000, waited_ms
    assert "worst of times" in turn.caller_text.lower()
    # The end-of-turn check heard the words already: the turn is not transcribed a second time.
    assert turn.spans["stt_final"] - turn.spans["endpoint"] < 20e6
    # ...and SmolLM2 read them, then read the words up to the end of speech again: the verdict
    # carries both readings.
    readings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("acoustic_turn_words")]
    assert readings and "complete=True" in readings[-1] and "p_words=nan" not in readings[-1], readings
    assert "speech_end_words=None" not in readings[-1] and "p_end=nan" not in readings[-1], readings
    # ...each as a reply to what the agent had said: its greeting.
    assert readings[-1].endswith(repr(appliance.agent.first_message)), readings[-1]


@pytest.mark.parametrize("service", ["stt", "tts"])
def test_a_killed_speech_worker_is_restarted_and_the_call_goes_on(appliance, service):
    router = appliance.services.router
    killed = []

    def kill_while_it_works():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            busy = [w for w in router.status().live(service) if w.jobs]
            if busy:
                os.kill(busy[0].pid, signal.SIGKILL)
                killed.append(busy[0].pid)
            time.sleep(0.005)

    threading.Thread(target=kill_while_it_works, daemon=True).start()
    lines = (CallerLine("What is the status of order two two oh eight?"),)
    session, audio = appliance.place(ScriptedCaller(lines, appliance.line_rate), max_seconds=90)
    assert killed, f"the {service} worker was never seen busy"
    with store_of(appliance) as store:
        call = store.call(session.call_id)
        turns = store.turns(session.call_id)
    assert call.ended_at is not None
    spoken_after_greeting = [t for t in turns if t.role == "agent"][1:]
    if call.outcome == "escalated":  # the restart did not come in time: an apology and a hand-off, not silence
        assert spoken_after_greeting[-1].text == appliance.agent.apology
    else:
        assert spoken_after_greeting and spoken_after_greeting[0].text, "the call went silent"


def test_a_failed_call_is_pointed_at_judged_and_becomes_a_test_that_runs(appliance, engine, tmp_path):
    from parley.appliance.platform.analysis import analyze
    from parley.appliance.platform.testing.from_call import test_from_call
    from parley.appliance.platform.testing.runner import TestRunner
    from parley.appliance.platform.testing.suite import load_tests

    lines = (CallerLine("What is the status of order one one one one?"),)  # no such order: the lookup fails
    session, _ = appliance.place(ScriptedCaller(lines, appliance.line_rate), max_seconds=90)
    with store_of(appliance) as store:
        failed = [t for t in store.tool_calls(session.call_id) if t.status != "ok"]
        assert failed, "the lookup of a missing order did not fail"
        positions = {t.id: t.position for t in store.turns(session.call_id)}
        went_wrong = analyze(store, session.call_id).went_wrong
    assert (went_wrong.kind, went_wrong.turn) == ("tool_error", positions[failed[0].turn_id])
    evaluated = appliance.evaluate(session.call_id)
    assert set(evaluated["criteria"]) == {"resolved", "no_invented_facts", "confirmed_before_acting"}
    assert set(evaluated["criteria"].values()) <= {"success", "failure", "unknown"}
    with store_of(appliance) as store:
        stored = store.db.execute("SELECT criterion, rationale FROM call_evaluations WHERE call_id = ?",
                                  [session.call_id]).fetchall()
        (tmp_path / "from-call.yaml").write_text(test_from_call(store, session.call_id, went_wrong.turn))
    assert len(stored) == 3 and all(rationale for _, rationale in stored)
    [test] = load_tests([tmp_path / "from-call.yaml"])
    assert test.kind == "next_turn" and test.history[-1][0] == "caller"
    outcome = TestRunner(appliance.agent, engine).run(test, 1, seed=1)
    assert outcome.status in ("passed", "failed"), outcome.reasons
    assert outcome.details["judged"]["judge"]["rationale"]


def test_an_audio_simulation_talks_to_the_agent_through_the_whole_voice_path(appliance, engine):
    from parley.appliance.platform.testing.runner import TestRunner
    from parley.appliance.platform.testing.suite import load_tests

    [test] = [t for t in load_tests([ACME_DIR / "tests"]) if t.mode == "audio"]
    outcome = TestRunner(appliance.agent, engine, placer=appliance).run(test, 1, seed=1)
    assert outcome.status in ("passed", "failed"), outcome.reasons
    heard = [line for line in outcome.details["transcript"] if line.startswith("caller: ")]
    assert outcome.details["caller_said"] and heard, "the simulated caller was not heard through STT"
    with store_of(appliance) as store:
        assert store.call(outcome.details["call_id"]).channel == "test"
