"""The whole CallLoop per 20 ms frame on a real telephone turn (beckett.wav over G.711 RTP):
decode, jitter buffer, resample to 16 kHz, two-stage VAD, endpointer, playout, encode.

Peers in the same run: webrtcvad's ``is_speech`` alone on the same frames (the cheapest VAD in the
field), so the ratio says what the whole loop costs next to a bare VAD; and Silero alone on as
many windows as the loop had it score, so the loop's cost less that is what the compiled path
costs (Silero runs only on the frames stage (a) is unsure of, but on a speech-dense turn that is
a third of them, and one window costs more than a whole frame of the rest). Instruction counts
for the same split: ``scripts/callgrind_call_loop.py``.
"""

import numpy as np
import pytest

from parley.appliance.config import load_settings
from parley.core import call_loop, codecs
from parley.core.bargein import BargeInSettings
from parley.core.call_loop import CallLoop, CallLoopSettings
from parley.core.silero import RecordedSilero, ReplayedSilero

FRAMES = 500


@pytest.fixture(scope="module")
def telephone_packets():
    from parley.core.evalset import build_turn_set

    models = load_settings().models_dir
    if not (models / "beckett" / "beckett.wav").is_file():
        pytest.skip("run `parley models fetch --for test`")
    turn = next(t for t in build_turn_set(models, snrs=(None,)) if t.name.startswith("beckett") and t.channel == "g711")
    audio = np.resize(turn.audio, FRAMES * 160)
    return [codecs.ulaw_encode(codecs.float32_to_pcm16(audio[k * 160:(k + 1) * 160])) for k in range(FRAMES)]


@pytest.fixture(scope="module")
def silero():
    from parley.core.silero import SileroVad

    path = load_settings().models_dir / "silero-vad" / "silero_vad.onnx"
    if not path.is_file():
        pytest.skip("run `parley models fetch --for test`")
    return SileroVad(path)


def run(loop, packets):
    """The media adapter's part: one packet in, one frame out, the events drained, per tick."""
    for k, payload in enumerate(packets):
        loop.feed_rtp(k, k * 160, payload, k * 20_000_000)
        loop.next_frame()
        while loop.next_event() is not None:
            pass
    return loop


def test_call_loop_per_frame(benchmark, telephone_packets, silero):
    benchmark.group = "call-loop-500-frames"
    benchmark.pedantic(run, setup=lambda: ((CallLoop(silero), telephone_packets), {}), rounds=5)
    benchmark.extra_info["frames"] = FRAMES
    benchmark.extra_info["compiled"] = call_loop.COMPILED


def test_call_loop_per_frame_without_silero(benchmark, telephone_packets, silero):
    benchmark.group = "call-loop-500-frames"
    recorded = RecordedSilero(silero, [])
    run(CallLoop(recorded), telephone_packets)
    benchmark.pedantic(run, setup=lambda: ((CallLoop(ReplayedSilero(silero, recorded.probabilities)),
                                            telephone_packets), {}), rounds=20)
    benchmark.extra_info["frames"] = FRAMES
    benchmark.extra_info["silero_windows_replayed"] = len(recorded.probabilities)


def test_call_loop_per_frame_while_the_agent_speaks(benchmark, telephone_packets, silero):
    """As without Silero, with the agent's voice playing out all along: the barge-in detector runs
    on every frame. Its ``barge_in_min_ms`` is longer than the call, so the caller's speech never
    stops the agent (the caller's turn, decoded, stands in for the agent's line)."""
    benchmark.group = "call-loop-500-frames"
    agent = np.concatenate([codecs.pcm16_to_float32(codecs.ulaw_decode(p)) for p in reversed(telephone_packets)])
    settings = CallLoopSettings(barge_in=BargeInSettings(barge_in_min_ms=FRAMES * 20 + 20))
    recorded = RecordedSilero(silero, [])
    run(CallLoop(recorded), telephone_packets)

    def speaking_loop():
        loop = CallLoop(ReplayedSilero(silero, recorded.probabilities), settings)
        loop.play(agent, 8000, 1)
        return (loop, telephone_packets), {}

    loop = benchmark.pedantic(run, setup=speaking_loop, rounds=20)
    assert loop.barge_in.position == FRAMES * 160, "the detector heard every frame"
    benchmark.extra_info["frames"] = FRAMES


def test_silero_alone_on_the_windows_the_loop_scored(benchmark, telephone_packets, silero):
    benchmark.group = "call-loop-500-frames"
    loop = run(CallLoop(silero), telephone_packets)
    audio = loop.turn_audio(0)
    windows = [audio[k * 512:(k + 1) * 512] for k in range(loop.vad.windows_scored)]

    def score(stream):
        for window in windows:
            silero.score(stream, window)

    benchmark.pedantic(score, setup=lambda: ((silero.new_stream(16000),), {}), rounds=5)
    benchmark.extra_info["windows"] = len(windows)
    benchmark.extra_info["frames_confirmed"] = loop.vad.frames_confirmed


def test_webrtcvad_is_speech_on_the_same_frames(benchmark, telephone_packets):
    webrtcvad = pytest.importorskip("webrtcvad")
    benchmark.group = "call-loop-500-frames"
    vad = webrtcvad.Vad(2)
    frames = [codecs.ulaw_decode(p).tobytes() for p in telephone_packets]

    def run():
        for frame in frames:
            vad.is_speech(frame, 8000)

    benchmark.pedantic(run, rounds=5)
