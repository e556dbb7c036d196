"""The whole per-call loop through its real parts: G.711 RTP in, Silero, events and playout out."""

import os

import numpy as np
import pytest

from conftest import fetched
from parley.core import codecs
from parley.core.call_loop import (
    BargeIn,
    CallLoop,
    CallLoopConfigError,
    CallLoopSettings,
    SpeechStarted,
    TurnEnded,
)
from parley.core.evalset import resample

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def silero(models_dir):
    from parley.core.silero import SileroVad

    return SileroVad(fetched(models_dir, "silero-vad", "silero_vad.onnx"))


@pytest.fixture(scope="module")
def turns(models_dir):
    fetched(models_dir, "beckett", "beckett.wav")
    from parley.core.evalset import build_turn_set

    return build_turn_set(models_dir, snrs=(None,), telephone=True)


def run_rtp(loop, audio_8k, extra_frames=0):
    """Packetize 8 kHz audio as 20 ms G.711 RTP, one packet per tick; collect events and output."""
    n = loop.frame_samples
    padded = np.concatenate([audio_8k, np.zeros(-len(audio_8k) % n + extra_frames * n, np.float32)])
    events, out = [], []
    for k in range(len(padded) // n):
        payload = codecs.ulaw_encode(codecs.float32_to_pcm16(padded[k * n:(k + 1) * n]))
        loop.feed_rtp(k, k * n, payload, k * 20_000_000)
        out.append(codecs.ulaw_decode(bytes(loop.next_frame())))
        while (event := loop.next_event()) is not None:
            events.append(event)
    return events, np.concatenate(out)


def test_a_telephone_turn_starts_and_ends_where_the_caller_spoke(silero, turns):
    turn = next(t for t in turns if t.name.startswith("beckett") and t.channel == "g711")
    loop = CallLoop(silero)
    events, _ = run_rtp(loop, turn.audio, extra_frames=10)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert starts and ends, events
    depth = loop.settings.jitter.min_depth_frames * loop.frame_samples
    first_speech = turn.speech_segments[0][0]
    assert abs(starts[0].sample - depth - first_speech) <= 0.1 * 8000
    assert starts[0].stt_from_sample <= starts[0].sample - 0.3 * 8000 + 1
    last = ends[-1]
    assert last.reason == "silence"
    hangover = loop.settings.endpointer.hangover_ms * 8
    assert abs(last.sample - depth - (turn.end_of_speech + hangover)) <= 0.15 * 8000


def test_the_caller_audio_for_stt_is_kept_at_16k(silero, turns):
    turn = next(t for t in turns if t.name.startswith("beckett") and t.channel == "g711")
    loop = CallLoop(silero)
    events, _ = run_rtp(loop, turn.audio)
    start = next(e for e in events if isinstance(e, SpeechStarted))
    audio = loop.turn_audio(start.stt_from_sample)
    assert len(audio) == 2 * (loop.position - start.stt_from_sample)
    assert np.sqrt(np.mean(audio ** 2)) > 0.005


def test_agent_audio_is_paced_out_and_counted(silero):
    loop = CallLoop(silero)
    voice = (0.3 * np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050)).astype(np.float32)
    loop.play(voice, 22050, utterance_id=1)
    _, out = run_rtp(loop, np.zeros(8000 + 1600, np.float32))
    assert loop.played_samples(1) == pytest.approx(8000, abs=160)
    tone = out[:8000].astype(np.float32) / 32768
    assert np.sqrt(np.mean(tone ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


def test_the_agent_hearing_its_own_echo_is_not_a_turn_or_a_barge_in(silero, models_dir):
    from parley.core.echoset import build_echo_set

    fetched(models_dir, "voice-en_US-joe-medium", "model.onnx")
    cases = [c for c in build_echo_set(models_dir) if c.caller_onset is None and c.erl_db == 6]
    for case in cases[:2]:
        loop = CallLoop(silero, CallLoopSettings(line_rate=16000, codec="l16"))
        loop.play(case.far, case.sample_rate, utterance_id=7)
        events = []
        for k in range(len(case.near) // loop.frame_samples):
            loop.feed_pcm(case.near[k * loop.frame_samples:(k + 1) * loop.frame_samples])
            loop.next_frame()
            while (event := loop.next_event()) is not None:
                events.append(event)
        assert not [e for e in events if isinstance(e, (BargeIn, SpeechStarted))], (case.name, events)


def test_a_caller_talking_over_the_agent_cuts_playout_in_the_same_frame(silero, models_dir):
    from parley.core.echoset import build_echo_set

    fetched(models_dir, "voice-en_US-joe-medium", "model.onnx")
    case = next(c for c in build_echo_set(models_dir) if c.caller_onset is not None and c.erl_db == 10)
    loop = CallLoop(silero, CallLoopSettings(line_rate=16000, codec="l16"))
    loop.play(case.far, case.sample_rate, utterance_id=3)
    barge, out_after = None, []
    for k in range(len(case.near) // loop.frame_samples):
        loop.feed_pcm(case.near[k * loop.frame_samples:(k + 1) * loop.frame_samples])
        out = loop.next_frame()
        if barge is not None:
            out_after.append(out.copy())
        while (event := loop.next_event()) is not None:
            if isinstance(event, BargeIn):
                barge = event
                assert not np.any(out), "the barge-in frame itself is already silent"
    assert barge is not None and barge.utterance_id == 3
    assert 0 <= barge.sample - case.caller_onset <= 0.5 * case.sample_rate
    assert barge.played_samples == loop.played_samples(3) < len(case.far)
    assert not np.any(np.concatenate(out_after)), "nothing of the cut utterance plays after the barge-in"


@pytest.mark.parametrize("kwargs, complaint", [
    ({"line_rate": 44100}, "line_rate must be 8000 or 16000"),
    ({"codec": "opus"}, "codec must be one of"),
    ({"codec": "pcmu", "line_rate": 16000}, "G.711 .pcmu. runs at 8000 Hz"),
    ({"frame_ms": 25}, "frame_ms must be 10, 20 or 30"),
])
def test_settings_the_loop_cannot_run_are_refused(kwargs, complaint):
    with pytest.raises(CallLoopConfigError, match=complaint):
        CallLoopSettings(**kwargs)


def test_bad_packets_and_mixed_sources_never_crash_the_loop(silero):
    loop = CallLoop(silero)
    assert loop.feed_rtp(0, 0, b"\xff" * 37, 0) is False, "a packet of the wrong size is dropped"
    assert loop.feed_rtp(5, 800, b"\xff" * 160, 0) is True
    assert loop.feed_rtp(4, 640, b"\xff" * 160, 0) is not None, "out of order is the jitter buffer's job"
    for _ in range(5):
        assert len(loop.next_frame()) == 160
    with pytest.raises(CallLoopConfigError, match="fed by rtp"):
        loop.feed_pcm(np.zeros(160, np.float32))
    pcm_loop = CallLoop(silero, CallLoopSettings(line_rate=16000, codec="l16"))
    pcm_loop.feed_pcm(np.array([np.nan, np.inf, 0.1] * 200, np.float32))
    pcm_loop.feed_pcm(np.zeros(0, np.float32))
    assert pcm_loop.next_frame() is not None
    assert pcm_loop.next_frame() is None, "a partial frame waits for more audio"


class DecidedStage:
    """An acoustic end-of-turn stage that answers at once with a fixed verdict (unit test only)."""

    def __init__(self, complete):
        self.complete, self.requests, self.turn_samples, self.cancelled, self._ready = complete, [], [], 0, {}
        self.silence_samples = []

    def request(self, call_key, audio_16k, sample, turn_samples, silence_samples):
        from parley.core.acoustic_turn import AcousticTurnVerdict

        self.requests.append((call_key, len(audio_16k), sample))
        self.turn_samples.append(turn_samples)
        self.silence_samples.append(silence_samples)
        self._ready[call_key] = AcousticTurnVerdict(0.9 if self.complete else 0.1, self.complete, sample, 1.0)

    def poll(self, call_key):
        return self._ready.pop(call_key, None)

    def cancel(self, call_key):
        self.cancelled += 1
        self._ready.pop(call_key, None)


@pytest.mark.parametrize("complete", [True, False])
def test_the_acoustic_verdict_ends_a_complete_turn_early_and_no_other(silero, turns, complete):
    turn = next(t for t in turns if t.name.startswith("beckett") and t.channel == "g711")
    stage = DecidedStage(complete)
    loop = CallLoop(silero, acoustic_stage=stage, call_key="call-1")
    events, _ = run_rtp(loop, turn.audio, extra_frames=10)
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert stage.requests and all(key == "call-1" for key, _, _ in stage.requests)
    assert all(0 < n <= 8 * 16000 for _, n, _ in stage.requests), "at most the last 8 s at 16 kHz"
    # The words heard are the turn's own: from its first speech (less the pre-roll) to the pause.
    first_speech = turn.speech_segments[0][0]
    sample = stage.requests[0][2]
    assert abs(stage.turn_samples[0] - (sample - first_speech) * 2) <= 0.4 * 16000
    # ...and the pause so far is the silence the endpointer waited before asking (at 16 kHz).
    short = loop.settings.endpointer.short_silence_ms * 16
    assert all(short <= n <= short + 2 * 2 * loop.frame_samples for n in stage.silence_samples), stage.silence_samples
    if complete:
        assert ends[0].reason == "acoustic"
        short = loop.settings.endpointer.short_silence_ms * 8
        assert ends[0].sample - ends[0].speech_end_sample <= short + 2 * loop.frame_samples
    else:
        assert all(e.reason == "silence" for e in ends)
        assert ends[-1].sample - ends[-1].speech_end_sample >= loop.settings.endpointer.hangover_ms * 8 - 160


def test_odd_chunk_sizes_give_the_same_frames_as_whole_frames(silero, turns):
    turn = next(t for t in turns if t.name.startswith("beckett") and t.channel == "wideband")
    settings = CallLoopSettings(line_rate=16000, codec="l16")
    audio = turn.audio[: 320 * 100]

    def events_out(chunk_sizes):
        loop, out, at, k = CallLoop(silero, settings), [], 0, 0
        while at < len(audio):
            size = chunk_sizes[k % len(chunk_sizes)]
            loop.feed_pcm(audio[at:at + size])
            at, k = at + size, k + 1
            while loop.next_frame() is not None:
                while (event := loop.next_event()) is not None:
                    out.append(event)
        return out, loop

    whole, whole_loop = events_out([320])
    odd, odd_loop = events_out([7, 1, 333, 0, 2048, 13])
    assert whole and any(isinstance(e, SpeechStarted) for e in whole)
    assert odd == whole, "the same turn-taking events, whatever the chunking"
    assert whole_loop.vad.frames == odd_loop.vad.frames == 100
    assert np.array_equal(whole_loop.turn_audio(0), odd_loop.turn_audio(0))


def observed(loop, frames, feed):
    """Every event (as its type and fields) and every frame sent, feeding one frame per tick."""
    events, sent = [], []
    for k, frame in enumerate(frames):
        feed(loop, k, frame)
        sent.append(bytes(loop.next_frame()))
        while (event := loop.next_event()) is not None:
            events.append((type(event).__name__, vars(event)))
    return events, sent, loop.turn_audio(0)


def test_the_compiled_loop_and_its_twin_hear_the_same_calls(silero, turns, models_dir):
    """Parity on real audio: a telephone turn over RTP, and a caller barging in over the agent's echo."""
    from parley.core.echoset import build_echo_set

    fetched(models_dir, "voice-en_US-joe-medium", "model.onnx")
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _call_loop_c, _call_loop_py

    turn = next(t for t in turns if t.name.startswith("beckett") and t.channel == "g711")
    audio = np.concatenate([turn.audio, np.zeros(-len(turn.audio) % 160 + 20 * 160, np.float32)])
    packets = [codecs.ulaw_encode(codecs.float32_to_pcm16(audio[k:k + 160])) for k in range(0, len(audio), 160)]

    def rtp(loop, k, payload):
        loop.feed_rtp(k, k * 160, payload, k * 20_000_000)

    telephone = [observed(module.CallLoop(silero), packets, rtp) for module in (_call_loop_py, _call_loop_c)]
    assert {"SpeechStarted", "TurnEnded"} <= {name for name, _ in telephone[0][0]}
    case = next(c for c in build_echo_set(models_dir) if c.caller_onset is not None and c.erl_db == 10)
    settings = CallLoopSettings(line_rate=16000, codec="l16")
    barged = []
    for module in (_call_loop_py, _call_loop_c):
        loop = module.CallLoop(silero, settings)
        loop.play(case.far, case.sample_rate, utterance_id=3)
        frames = [case.near[k:k + 320] for k in range(0, len(case.near) - 319, 320)]
        barged.append(observed(loop, frames, lambda loop, k, frame: loop.feed_pcm(frame)))
    assert any(name == "BargeIn" for name, _ in barged[0][0])
    for twin, compiled in (telephone, barged):
        assert compiled[0] == twin[0], "the same events, with the same samples"
        assert compiled[1] == twin[1], "the same frames sent"
        assert np.array_equal(compiled[2], twin[2]), "the same audio kept for STT"


def test_a_call_takes_memory_only_as_its_buffers_fill(silero):
    """Its 120 s playout ring and 60 s of turn audio are backed by pages only as they are written:
    a new call used to take 7.7 MB at once, all under the GIL, and setting up 50 calls stalled
    the media clock on a machine slow to hand out fresh pages."""
    from test_buffers import resident_bytes

    before = resident_bytes()
    loops = [CallLoop(silero) for _ in range(20)]
    per_call = (resident_bytes() - before) / len(loops)
    assert per_call < 1 << 20, f"{per_call / 2**20:.1f} MB a call"
