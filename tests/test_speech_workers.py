"""The speech workers as the appliance runs them: real processes behind a router, real models,
jobs over the bus."""

import time

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.bus import (
    BusClient,
    BusEndpoints,
    BusTiming,
    HandlerFailed,
    RequestCancelled,
    Sequencer,
    WorkerRouter,
    WorkerSpec,
)
from parley.appliance.speech.scoring import word_errors

pytestmark = pytest.mark.models

TIMING = BusTiming(heartbeat_interval=0.2, heartbeat_liveness=5, request_timeout=20.0, stop_grace=2.0)
WORKERS = "parley.appliance.speech.workers"
stamp = Sequencer()


def say(text, call_id="c1", turn_id=1, **body):
    return stamp.make("tts_request", {"text": text, **body}, call_id=call_id, turn_id=turn_id)


@pytest.fixture(scope="module")
def router(models_dir, tmp_path_factory):
    """One STT and one TTS worker process, shared by the tests of this module (models load once)."""
    fetched(models_dir, "whisper-tiny.en", "tiny.en-encoder.onnx")
    fetched(models_dir, "voice-en_US-joe-medium", "model.onnx")
    router = WorkerRouter(BusEndpoints.ipc(tmp_path_factory.mktemp("bus")), timing=TIMING)
    env = {"PARLEY_MODELS": str(models_dir), "PARLEY_SPEECH_THREADS": "1"}
    router.supervise(WorkerSpec("stt", f"{WORKERS}:SttWorker", 1, env))
    router.supervise(WorkerSpec("tts", f"{WORKERS}:TtsWorker", 1, env))
    router.start()
    deadline = time.monotonic() + 60
    while {w.service for w in router.status().workers} != {"stt", "tts"}:
        exits = router.status().exits
        if exits:
            router.stop()
            pytest.fail(f"a speech worker exited while loading: {exits[-1].reason}\n{exits[-1].output_tail}")
        if time.monotonic() > deadline:
            router.stop()
            pytest.fail("the speech workers did not announce themselves within 60 s")
        time.sleep(0.05)
    yield router
    router.stop()


@pytest.fixture
def client(router):
    with BusClient(router.endpoints.clients) as client:
        yield client


def pcm16(replies):
    return np.concatenate([np.frombuffer(r.audio, "<i2") for r in replies if r.type == "tts_audio"])


def test_a_tts_request_streams_sentences_then_done(client):
    replies = client.request("tts", say("Thank you for calling Acme. How can I help?", sample_rate=8000))
    *audio, done = replies
    assert [r.type for r in audio] == ["tts_audio", "tts_audio"] and done.type == "tts_done"
    assert [r.body["sentence_index"] for r in audio] == [0, 1]
    assert all(r.body["sample_rate"] == 8000 for r in audio)
    assert all((r.call_id, r.turn_id) == ("c1", 1) for r in replies)
    ends = [r.body["offset_samples"] + len(r.audio) // 2 for r in audio]
    assert [r.body["offset_samples"] for r in audio] == [0, ends[0]]
    assert done.body == {"samples": ends[-1]}
    assert 1.5 < ends[-1] / 8000 < 6


def test_tts_speaks_at_the_voices_own_rate_unless_asked(client):
    audio, done = client.request("tts", say("Yes."))
    assert audio.body["sample_rate"] == 22050 and done.body["samples"] == len(audio.audio) // 2


def test_cancelling_a_long_reply_by_its_call_stops_the_worker(client, router):
    text = " ".join(f"This is sentence number {n} of a long answer that nobody wants to hear." for n in range(1, 13))
    with BusClient(router.endpoints.clients) as call_loop:
        replies = client.stream("tts", say(text, call_id="c9", turn_id=2, sample_rate=8000))
        got = [next(replies)]
        assert got[0].type == "tts_audio"
        started = time.monotonic()
        call_loop.cancel("c9", 2, reason="barge_in")
        with pytest.raises(RequestCancelled, match=r"cancelled \(barge_in\)"):
            got.extend(replies)
        assert time.monotonic() - started < 2.0, "stopped within a sentence, not after all twelve"
    assert len(got) < 4
    assert client.request("tts", say("Still here."))[-1].type == "tts_done"


def test_an_unknown_voice_fails_the_job_with_the_voices_there_are(client):
    with pytest.raises(HandlerFailed, match=r"no voice named 'nobody'.*voice-en_US-joe-medium"):
        client.request("tts", say("Hello.", voice="nobody"))


def test_stt_hears_a_line_the_tts_worker_spoke_on_a_telephone_rate(client):
    line = "I want to return the blue jacket."
    speech = pcm16(client.request("tts", say(line, sample_rate=8000)))
    request = stamp.make("stt_request", {"sample_rate": 8000}, call_id="c2", turn_id=5)
    (final,) = client.request("stt", request, audio=speech.tobytes())
    assert (final.type, final.call_id, final.turn_id) == ("stt_final", "c2", 5)
    errors, words = word_errors(line, final.body["text"])
    assert errors <= 1, final.body["text"]


def test_stt_of_a_turn_too_short_for_a_word_is_empty_text(client):
    request = stamp.make("stt_request", {"sample_rate": 8000}, call_id="c2", turn_id=6)
    (final,) = client.request("stt", request, audio=b"\x00\x01" * 40)
    assert final.body == {"text": ""}
