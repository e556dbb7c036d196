"""A real softphone calls Parley: baresip (Debian's, not ours) dials the agent directly, and through
Kamailio as the site's PBX with Parley registered on it as an extension. The first tests use the
stand-in models (a tone voice, a fixed transcript, the switchboard agent); the last ones the real
models, where the phone's recording is transcribed and a refund is completed with the order
number keyed on the phone's keypad."""

import os
import re
import time

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.shop import fresh_copy, refunds_for
from parley.appliance.media.file_channel import speak_with_espeak, write_wav
from parley.appliance.media.placer import CallPlacer
from parley.appliance.media.sip.server import MediaSettings, SipServer
from parley.appliance.media.sip.useragent import SipSettings
from parley.appliance.services import ServicePlan, Services
from parley.appliance.speech import Synthesizer
from parley.appliance.speech.stt import Recognizer, RecognizerSettings
from parley.appliance.store import Store
from parley.core.silero import SileroVad
from sip_appliance import ThreadedServer, session_factory, standin_router
from sip_phone import Baresip, Kamailio, baresip_available, free_udp_port, kamailio_available, read_wav, tone_share

pytestmark = [pytest.mark.models, pytest.mark.slow,
              pytest.mark.skipif(not baresip_available(), reason="baresip is not installed (Debian: baresip-core)")]


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    router = standin_router(tmp_path_factory.mktemp("run"))
    yield router
    router.stop()


@pytest.fixture(scope="module")
def silero(models_dir):
    return SileroVad(fetched(models_dir, "silero-vad", "silero_vad.onnx"))


@pytest.fixture(scope="module")
def question(models_dir, tmp_path_factory):
    """A caller's line as the phone's microphone: two seconds of quiet, then speech."""
    rate = 8000
    speech = speak_with_espeak("Hello, where is my order?", rate)
    return write_wav(tmp_path_factory.mktemp("mic") / "question.wav",
                     np.concatenate([np.zeros(2 * rate, np.float32), speech]), rate)


def parley(router, silero, tmp_path, **sip):
    factory = session_factory(router.endpoints, silero, tmp_path / "parley.db")
    return ThreadedServer(SipServer(SipSettings(port=free_udp_port(), **sip), factory,
                                    media=MediaSettings(rtp_ports=(34000, 35998))))


def heard_tone(phone):
    rate, heard = read_wav(phone.recording())
    return tone_share(heard.astype(np.float32), rate, 440.0)


def test_baresip_calls_the_agent_directly_and_both_sides_hear_each_other(router, silero, question, tmp_path):
    with parley(router, silero, tmp_path) as running, Baresip("alice", microphone=question,
                                                              directory=tmp_path / "alice") as alice:
        alice.dial(running.uri)
        alice.wait_for("CALL_ESTABLISHED", timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _caller_turns(tmp_path):
            time.sleep(0.2)
        alice.wait_heard(6.0, timeout=15)
        alice.hangup()
        alice.wait_for("CALL_CLOSED", timeout=10)
        [finished] = running.wait_finished(1)
    assert _caller_turns(tmp_path) == ["Where is my order?"], "the caller's speech did not reach STT as a turn"
    assert heard_tone(alice) > 0.2, "the phone did not hear the agent's (tone) voice"
    with Store.open(tmp_path / "parley.db") as store:
        media = store.call_media(finished.session.call_id)
    assert media["ended_by"] == "caller" and media["packets_received"] > 200 and media["packets_lost"] == 0
    assert media["remote_lost"] == 0 and media["remote_jitter_ms"] is not None, "no RTCP report from the phone"


def test_keys_from_baresip_reach_the_agent_as_typed_input(router, silero, question, tmp_path):
    with parley(router, silero, tmp_path) as running, Baresip("alice", directory=tmp_path / "alice") as alice:
        alice.dial(running.uri)
        alice.wait_for("CALL_ESTABLISHED", timeout=10)
        time.sleep(1.0)
        alice.send_dtmf("4512#")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "4512" not in _caller_turns(tmp_path):
            time.sleep(0.2)
        alice.hangup()
        alice.wait_for("CALL_CLOSED", timeout=10)
        [finished] = running.wait_finished(1)
    assert _caller_turns(tmp_path) == ["4512"]
    assert finished.media_record()["dtmf_keys"] == "4512#"


@pytest.mark.skipif(not kamailio_available(), reason="Kamailio is not installed (Debian: kamailio)")
def test_parley_registers_on_kamailio_and_a_registered_phone_reaches_it_by_extension(router, silero, question,
                                                                                    tmp_path):
    with Kamailio({"parley": "agent-secret", "alice": "pw"}, directory=tmp_path / "pbx") as pbx:
        host, port = pbx.address.rsplit(":", 1)
        server = parley(router, silero, tmp_path, registrar=(host, int(port)), username="parley",
                        password="agent-secret", register_expires=60)
        with server as running, Baresip("alice", registrar=pbx.address, password="pw", microphone=question,
                                        directory=tmp_path / "alice") as alice:
            pbx.wait_registered("parley", timeout=10)
            assert running.server.registration is not None and running.server.registration.ok
            alice.dial(pbx.uri("parley"))
            alice.wait_for("CALL_ESTABLISHED", timeout=15)
            alice.wait_heard(6.0, timeout=15)
            alice.hangup()
            alice.wait_for("CALL_CLOSED", timeout=10)
            [finished] = running.wait_finished(1)
        assert "event=challenge" in pbx.log_text() and "event=registered" in pbx.log_text()
    assert heard_tone(alice) > 0.2
    assert "alice" in _caller_of(tmp_path, finished)


def _caller_of(tmp_path, finished):
    with Store.open(tmp_path / "parley.db") as store:
        return store.call(finished.session.call_id).caller


def _caller_turns(tmp_path):
    path = tmp_path / "parley.db"
    if not path.exists():
        return []
    with Store.open(path) as store:
        rows = store.db.execute("SELECT text FROM turns WHERE role = 'caller' ORDER BY id").fetchall()
    return [row[0] for row in rows]


# ---- the real models ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def appliance(tmp_path_factory, models_dir):
    """The appliance's real workers (Whisper, the Piper voice, the 1.5B LLM) on scratch data."""
    for name in (("llm-qwen2.5-coder-1.5b",), ("whisper-tiny.en", "tiny.en-encoder.onnx"),
                 ("voice-en_US-joe-medium", "model.onnx"), ("silero-vad", "silero_vad.onnx")):
        fetched(models_dir, *name)
    settings = load_settings().with_var(tmp_path_factory.mktemp("var"))
    previous = os.environ.get("PARLEY_VAR")
    os.environ["PARLEY_VAR"] = str(settings.var_dir)
    services = Services(ServicePlan(str(ACME_DIR)), settings=settings).start()
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


def answering(placer):
    """Parley's SIP server answering with the real agent."""
    return ThreadedServer(SipServer(SipSettings(port=free_udp_port()),
                                    lambda caller, codec: placer.session(channel="sip", caller=caller, codec=codec),
                                    media=MediaSettings(rtp_ports=(36000, 37998))))


def line(voice, folder, name, text, tail_s=90):
    """A caller's line as a microphone file, in the Piper voice (tiny.en mishears espeak-ng over a
    G.711 line too often for a scripted call): the words, then quiet (baresip hangs up when its
    file ends)."""
    rate = 8000
    return write_wav(folder / f"{name}.wav", np.concatenate([voice.speak(text, out_rate=rate),
                                                              np.zeros(tail_s * rate, np.float32)]), rate)


def wait_until(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.2)


def agent_done(session, turns):
    """The agent has finished ``turns`` replies and its voice has played out."""
    return len(session.turns) >= turns and not session.agent_speaking


def test_a_phone_hears_the_real_agent_greet_it(appliance, tmp_path, models_dir):
    recognizer = Recognizer.from_dir(models_dir / "whisper-tiny.en", RecognizerSettings(num_threads=2))
    with answering(appliance) as running, Baresip("alice", directory=tmp_path / "alice") as alice:
        alice.dial(running.uri)
        alice.wait_for("CALL_ESTABLISHED", timeout=15)
        alice.wait_heard(8.0, timeout=60)
        alice.hangup()
        alice.wait_for("CALL_CLOSED", timeout=10)
        running.wait_finished(1)
    rate, heard = read_wav(alice.recording())
    text = recognizer.transcribe(heard[: rate * 8].astype(np.float32) / 32768, rate).text.lower()
    greeting = re.findall(r"[a-z]+", appliance.agent.first_message.lower())
    heard = set(re.findall(r"[a-z]+", text))
    recall = sum(word in heard for word in greeting) / len(greeting)
    assert text.startswith("thanks for calling") and recall >= 0.75, (recall, text)


def test_a_refund_completed_from_a_phone_with_the_order_number_keyed_in(appliance, tmp_path, models_dir):
    """baresip speaks (espeak-ng lines switched in as its microphone once the agent has finished
    talking) and keys the order number when asked; it says yes once the agent reads a refund back.
    The refund must land in the shop's database, with the keys and tools on the call's record."""
    mic = tmp_path / "mic"
    mic.mkdir()
    quiet = write_wav(mic / "quiet.wav", np.zeros(120 * 8000, np.float32), 8000)
    voice = Synthesizer(fetched(models_dir, "voice-en_US-joe-medium", "model.onnx").parent, deterministic=True)
    ask = line(voice, mic, "ask", "Hello. My kettle arrived broken. I want a refund, please.")
    again = line(voice, mic, "again", "Please refund the broken kettle.")
    yes = line(voice, mic, "yes", "Yes, please go ahead.")
    bye = line(voice, mic, "bye", "No thank you, that's all. Goodbye.")
    with answering(appliance) as running, Baresip("alice", microphone=quiet, directory=tmp_path / "alice") as alice:
        alice.dial(running.uri)
        alice.wait_for("CALL_ESTABLISHED", timeout=15)
        wait_until(lambda: running.server.calls, 10, "the call to be answered")
        [media_call] = running.server.calls.values()
        session = media_call.session
        wait_until(lambda: agent_done(session, 1), 90, "the greeting")
        alice.switch_microphone(ask)
        wait_until(lambda: agent_done(session, 2), 180, "the reply to the refund request")
        alice.send_dtmf("4512#")
        wait_until(lambda: agent_done(session, 3), 180, "the reply to the keyed order number")
        for _ in range(3):
            if _refunded(appliance, session):
                break
            said = session.turns[-1].agent_text.lower()
            alice.switch_microphone(yes if "refund" in said and "?" in said else again)
            turns = len(session.turns) + 1
            wait_until(lambda: agent_done(session, turns), 180, "the agent's next reply")
        assert _refunded(appliance, session), _transcript(session)
        alice.switch_microphone(bye)
        wait_until(lambda: session.closed.is_set(), 180, "the goodbye")
        wait_until(lambda: running.server.finished, 30, "the agent to hang up")
    with Store.open(appliance.settings.db_path) as store:
        media = store.call_media(session.call_id)
        tools = [t.tool for t in store.tool_calls(session.call_id)]
        caller_turns = [t.text for t in store.turns(session.call_id) if t.role == "caller"]
    assert "4512" in caller_turns and media["dtmf_keys"] == "4512#"
    assert "lookup_order" in tools and "issue_refund" in tools
    latencies = [t.voice_to_voice_ms for t in session.turns if t.voice_to_voice_ms is not None]
    print(f"\nSIP refund call, real models: voice-to-voice p50 {np.percentile(latencies, 50):.0f} ms, "
          f"p95 {np.percentile(latencies, 95):.0f} ms over {len(latencies)} answers")


def _refunded(placer, session):
    return any(r.get("call_id") == session.call_id for r in refunds_for(placer.agent.tool_config["shop_db"], "4512"))


def _transcript(session):
    return "\n".join(f"caller: {t.caller_text!r} / agent: {t.agent_text!r} ({t.action})" for t in session.turns)
