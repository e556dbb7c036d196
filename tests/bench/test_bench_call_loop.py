"""The whole CallLoop per 20 ms frame on a real telephone turn (beckett.wav over G.711 RTP):
decode, jitter buffer, resample to 16 kHz, two-stage VAD, endpointer, playout, encode.

Peer in the same run: webrtcvad's ``is_speech`` alone on the same frames (the cheapest VAD in the
field), so the ratio says what the whole loop costs next to a bare VAD.
"""

import numpy as np
import pytest

from parley.appliance.config import load_settings
from parley.core import codecs
from parley.core.call_loop import CallLoop

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


def test_call_loop_per_frame(benchmark, telephone_packets, silero):
    benchmark.group = "call-loop-500-frames"

    def run(loop):
        for k, payload in enumerate(telephone_packets):
            loop.feed_rtp(k, k * 160, payload, k * 20_000_000)
            loop.next_frame()
            while loop.next_event() is not None:
                pass

    benchmark.pedantic(run, setup=lambda: ((CallLoop(silero),), {}), rounds=5)
    benchmark.extra_info["frames"] = FRAMES


def test_webrtcvad_is_speech_on_the_same_frames(benchmark, telephone_packets):
    webrtcvad = pytest.importorskip("webrtcvad")
    benchmark.group = "call-loop-500-frames"
    vad = webrtcvad.Vad(2)
    frames = [codecs.ulaw_decode(p).tobytes() for p in telephone_packets]

    def run():
        for frame in frames:
            vad.is_speech(frame, 8000)

    benchmark.pedantic(run, rounds=5)
