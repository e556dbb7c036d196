"""Conversation flow on a real call path: the real CallLoop (Silero VAD), real ZeroMQ, real worker
processes — stand-ins for the models (a tone voice, a fixed transcript, an agent that takes its
time), so the soft-timeout filler, the silence timeout and the time limit are timed exactly."""

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.agent.config import load_agent
from parley.appliance.bus import BusTiming, WorkerRouter, WorkerSpec
from parley.appliance.bus.settings import BusEndpoints
from parley.appliance.demo import ACME_DIR
from parley.appliance.media.call_session import CallSession
from parley.appliance.media.file_channel import read_wav, run_call
from parley.appliance.store import Store
from parley.core.silero import SileroVad

pytestmark = pytest.mark.models
RATE = 16000
AGENT_DELAY_S = 3.0


def started_router(run_dir, agent, **env):
    """A started router over the stand-in voice and transcript and ``agent`` (``bus_stand_ins``),
    each worker with ``env`` set."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    router = WorkerRouter(BusEndpoints.ipc(run_dir), timing=BusTiming(request_timeout=20.0))
    for service, target in (("tts", "ToneVoice"), ("stt", "FixedTranscript"), ("agent", agent)):
        router.supervise(WorkerSpec(service, f"bus_stand_ins:{target}", 1, env={"PYTHONPATH": path, **env}))
    router.start()
    return router


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    router = started_router(tmp_path_factory.mktemp("run"), "SlowAgent", PARLEY_TEST_AGENT_DELAY_S=str(AGENT_DELAY_S))
    yield router
    router.stop()


@pytest.fixture(scope="module")
def silero(models_dir):
    return SileroVad(fetched(models_dir, "silero-vad", "silero_vad.onnx"))


@pytest.fixture(scope="module")
def beckett(models_dir):
    return read_wav(fetched(models_dir, "beckett", "beckett.wav"), RATE)[: RATE * 3]


class SpeaksAt:
    """Silent (while the greeting plays, too) but for real spoken lines (beckett.wav pieces), each
    from its own second of the call."""

    def __init__(self, *lines):
        self.lines = [(line, int(at_s * RATE)) for line, at_s in lines]
        self.frame = RATE // 50

    @property
    def done(self):
        return False

    def next_frame(self, session, sample):
        frame = np.zeros(self.frame, np.float32)
        for line, start in self.lines:
            offset = sample - start
            if 0 <= offset < line.shape[0]:
                part = line[offset:offset + self.frame]
                frame[:part.shape[0]] += part
        return frame


def session_for(router, silero, tmp_path, channel="test", **flow):
    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    acme = replace(acme, conversation=replace(acme.conversation, **flow))
    with Store.open(tmp_path / "parley.db") as store:
        version = store.save_agent_version("acme", {"files": {}}, author="t", message="m")
    return CallSession(agent=acme, agent_folder=ACME_DIR, agent_version_id=version.id, endpoints=router.endpoints,
                       store_path=tmp_path / "parley.db", silero=silero, channel=channel, line_rate=RATE)


def test_a_slow_reply_is_preceded_by_the_filler_and_timed_from_the_real_answer(router, silero, beckett, tmp_path):
    session = session_for(router, silero, tmp_path, soft_timeout_ms=1000, silence_timeout_s=0, head_start=False)
    audio = run_call(session, SpeaksAt((beckett, 1.5)), max_seconds=14)
    answered = [t for t in session.turns if t.caller_text]
    assert answered and answered[0].filler, "the filler was not played while the agent took 3 s"
    turn = answered[0]
    filler_at_ms = (turn.spans["endpoint"] - turn.spans["user_speech_end"]) / 1e6 + 1000
    assert turn.voice_to_voice_ms > AGENT_DELAY_S * 1000 > filler_at_ms, "playout_start must be the answer, not the filler"
    speech_end_s = (1.5 + beckett.shape[0] / RATE)
    window = audio.agent[int((speech_end_s + 0.3) * RATE): int((speech_end_s + filler_at_ms / 1000 + 0.5) * RATE)]
    assert np.max(np.abs(window)) > 0.1, "no filler audio in the second after the soft timeout"


def test_a_head_start_at_the_last_pause_transcribes_the_turn_and_brings_the_reply_forward(
        router, silero, beckett, tmp_path):
    ended = {}
    for head_start in (False, True):
        session = session_for(router, silero, tmp_path / str(head_start), soft_timeout_ms=0, silence_timeout_s=0,
                              head_start=head_start)
        run_call(session, SpeaksAt((beckett, 1.5)), max_seconds=12)
        [turn] = [t for t in session.turns if t.caller_text]
        ended[head_start] = turn
    taken, cold = ended[True], ended[False]
    hangover_ms = (taken.spans["endpoint"] - taken.spans["user_speech_end"]) / 1e6
    assert taken.spans["stt_final"] < taken.spans["endpoint"] and cold.spans["stt_final"] > cold.spans["endpoint"], \
        "with a head start the words are in before the turn ends; without, after"
    assert taken.voice_to_voice_ms < cold.voice_to_voice_ms - hangover_ms / 2, \
        "the agent's work from the pause on was not counted towards the reply"
    assert taken.agent_text == cold.agent_text == "It has shipped."


def test_every_channel_gets_head_starts_and_an_agent_may_turn_them_off(router, silero, tmp_path):
    assert session_for(router, silero, tmp_path / "a").head_start is True
    assert session_for(router, silero, tmp_path / "b", channel="sip").head_start is True
    assert session_for(router, silero, tmp_path / "c", head_start=False).head_start is False


def test_no_filler_when_the_reply_comes_in_time(router, silero, beckett, tmp_path):
    session = session_for(router, silero, tmp_path, soft_timeout_ms=6000, silence_timeout_s=0)
    run_call(session, SpeaksAt((beckett, 1.5)), max_seconds=12)
    answered = [t for t in session.turns if t.caller_text]
    assert answered and not answered[0].filler


def test_a_reply_not_yet_playing_is_dropped_when_the_caller_goes_on_and_both_parts_are_answered_once(
        router, silero, models_dir, tmp_path):
    # "Ever failed." ends a turn; 1 s later, while the agent still thinks (3 s), the caller goes on
    # for 3.5 s ("Ever tried. Ever failed. No matter."): the first reply would be ready mid-speech.
    full = read_wav(fetched(models_dir, "beckett", "beckett.wav"), RATE)
    first = full[int(1.6 * RATE): int(2.9 * RATE)]
    went_on = np.concatenate([full[int(0.2 * RATE): int(1.55 * RATE)], full[int(1.9 * RATE): int(2.9 * RATE)],
                              full[int(3.0 * RATE): int(4.15 * RATE)]])
    went_on_at = 3.3
    session = session_for(router, silero, tmp_path, soft_timeout_ms=0, silence_timeout_s=0)
    audio = run_call(session, SpeaksAt((first, 1.0), (went_on, went_on_at)), max_seconds=13)
    went_on_end = went_on_at + went_on.shape[0] / RATE
    during = audio.agent[int(went_on_at * RATE): int((went_on_end + 0.5) * RATE)]
    assert np.max(np.abs(during)) < 1e-3, "the reply to the first words played while the caller went on"
    answered = [t for t in session.turns if t.caller_text]
    assert len(answered) == 1 and answered[0].agent_text == "It has shipped."
    assert np.max(np.abs(audio.agent[int((went_on_end + 0.5) * RATE):])) > 0.1, "both parts answered after the caller"


def test_a_silent_caller_is_prompted_then_the_call_ends_politely(router, silero, tmp_path):
    session = session_for(router, silero, tmp_path, silence_timeout_s=2.0, silence_prompts=1)
    run_call(session, SpeaksAt(), max_seconds=20)
    assert [t.action for t in session.turns][1:] == ["silence_prompt", "goodbye"]
    assert session.outcome == "abandoned"
    with Store.open(tmp_path / "parley.db") as store:
        texts = [t.text for t in store.turns(session.call_id)]
    assert texts[-2:] == [session.agent.conversation.silence_prompt, session.agent.goodbye]


def test_the_time_limit_ends_the_call_with_its_message(router, silero, beckett, tmp_path):
    session = session_for(router, silero, tmp_path, max_call_s=5.0, silence_timeout_s=0)
    run_call(session, SpeaksAt((beckett, 1.5)), max_seconds=15)
    assert session.turns[-1].action == "time_limit" and session.outcome == "abandoned"
    assert session.closed.is_set()


class PressesOne:
    """Presses "1" on every frame of the first second, while the greeting is being voiced: the key
    lands before the greeting's first audio has left the session's queue for playout."""

    done = False

    def next_frame(self, session, sample):
        if sample < RATE:
            session.feed_dtmf("1")
        return np.zeros(RATE // 50, np.float32)


def test_a_key_pressed_before_the_greetings_audio_reaches_playout_interrupts_it_unheard(router, silero, tmp_path):
    session = session_for(router, silero, tmp_path, soft_timeout_ms=0, silence_timeout_s=0, max_call_s=4.0)
    run_call(session, PressesOne(), max_seconds=6)
    greeting = session.turns[0]
    assert greeting.heard_text == "", "the caller heard none of it"
    assert greeting.agent_text, "the greeting was under way when the key came"


def test_silence_inside_a_reply_is_counted_where_the_agent_stalled(router, silero, tmp_path, tmp_path_factory):
    session = session_for(router, silero, tmp_path / "smooth", silence_timeout_s=0)
    run_call(session, SpeaksAt(), max_seconds=2)
    assert session.turns[0].agent_text == "Hello." and session.turns[0].playout_gap_ms == 0

    halting = started_router(tmp_path_factory.mktemp("halting"), "SlowAgent", PARLEY_TEST_GREETING_PAUSE_S="1.0")
    try:
        session = session_for(halting, silero, tmp_path / "halting", silence_timeout_s=0)
        run_call(session, SpeaksAt(), max_seconds=4)
    finally:
        halting.stop()
    greeting = session.turns[0]
    assert greeting.agent_text == "Hello. How can I help?"
    # "Hello." is 120 ms of tone; the second sentence comes 1 s after the first was sent.
    assert 700 <= greeting.playout_gap_ms <= 1000, greeting.playout_gap_ms


@pytest.fixture(scope="module")
def confirming_router(tmp_path_factory):
    router = started_router(tmp_path_factory.mktemp("run"), "ConfirmingAgent", PARLEY_TEST_STATE_AFTER_S="4")
    yield router
    router.stop()


def test_a_refund_cut_off_by_the_caller_is_not_run_again_on_their_next_words(confirming_router, silero, models_dir,
                                                                             tmp_path):
    # The caller asks, hears the read-back, says yes; the refund runs and the caller talks over
    # "Done. The money is ..." before the agent's state for that turn has come. The call must keep
    # the state the refund left (no read-back waiting any more), or the caller's next words would
    # count as a second yes and refund again.
    full = read_wav(fetched(models_dir, "beckett", "beckett.wav"), RATE)
    tried, failed = full[int(0.2 * RATE): int(1.55 * RATE)], full[int(1.6 * RATE): int(2.9 * RATE)]
    over = tried * (0.9 / np.max(np.abs(tried)))  # well above the tone the agent's voice is here
    session = session_for(confirming_router, silero, tmp_path, soft_timeout_ms=0, silence_timeout_s=0,
                          head_start=False)
    run_call(session, SpeaksAt((tried, 1.0), (failed, 4.5), (over, 7.6)), max_seconds=13)
    cut = [t for t in session.turns if t.heard_text is not None]
    assert len(cut) == 1 and cut[0].tools and cut[0].agent_text.startswith("Done."), \
        [(t.agent_text, t.heard_text, t.tools) for t in session.turns]
    assert [tool["name"] for t in session.turns for tool in t.tools] == ["issue_refund"]
    assert session.turns[-1].agent_text == "Shall I refund it?", "the words after the cut were answered afresh"
