"""VAD cost per 20 ms frame at 16 kHz: stage (a) compiled and interpreted beside its peers.

Every detector is fed the same speech-like frames (a voiced tone with noise, level varying
from frame to frame) after a warm-up, so the adaptive detectors are in their steady state.
webrtcvad and TEN VAD are peers only (``pip install webrtcvad-wheels==2.0.14.post1
ten-vad==1.0.6.9``; TEN also needs Debian ``libc++1``); TEN takes two 10 ms hops per frame.
Silero scores one 32 ms window per call (its own unit), so per 20 ms of audio it costs 20/32
of that. Run with ``.venv/bin/python -m pytest tests/bench/test_bench_vad.py --benchmark-only``.
"""

import itertools

import numpy as np
import pytest

from parley.appliance.config import load_settings
from parley.core import _vad_py, codecs

RATE = 16000
FRAME = 320
GROUP = "vad-frame-16k"


def _frames(count=64):
    rng = np.random.default_rng(0)
    t = np.arange(FRAME * count) / RATE
    voiced = np.sin(2 * np.pi * 140 * t) * np.sin(2 * np.pi * 3 * t) ** 2 * 0.1
    audio = (voiced + rng.standard_normal(len(t)) * 0.003).astype(np.float32)
    return [audio[k * FRAME:(k + 1) * FRAME] for k in range(count)]


FRAMES = _frames()


def _run_frames(benchmark, process, frames=FRAMES):
    for frame in frames:
        process(frame)
    cycle = itertools.cycle(frames)
    benchmark.group = GROUP
    benchmark(lambda: process(next(cycle)))


def test_stage_a_compiled(benchmark):
    from parley.core import _vad_c

    _run_frames(benchmark, _vad_c.NoiseFloorVad(RATE, 20).process)


def test_stage_a_python(benchmark):
    _run_frames(benchmark, _vad_py.NoiseFloorVad(RATE, 20).process)


def test_webrtcvad_is_speech(benchmark):
    webrtcvad = pytest.importorskip("webrtcvad")
    detector = webrtcvad.Vad(3)
    pcm = [codecs.float32_to_pcm16(frame).tobytes() for frame in FRAMES]
    _run_frames(benchmark, lambda frame: detector.is_speech(frame, RATE), pcm)


def test_ten_vad_two_hops(benchmark):
    ten_vad = pytest.importorskip("ten_vad")
    try:
        detector = ten_vad.TenVad(160, 0.5)
    except OSError as exc:
        pytest.skip(f"TEN VAD's library does not load ({exc}): apt-get install libc++1")
    pcm = [codecs.float32_to_pcm16(frame) for frame in FRAMES]

    def process(frame):
        detector.process(frame[:160])
        return detector.process(frame[160:])

    _run_frames(benchmark, process, pcm)


def test_silero_one_window(benchmark):
    from parley.core.silero import SileroVad

    path = load_settings().models_dir / "silero-vad" / "silero_vad.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not there: run `parley models fetch --for test`")
    model = SileroVad(path)
    stream = model.new_stream(RATE)
    audio = np.concatenate(FRAMES)
    windows = [audio[k * 512:(k + 1) * 512] for k in range(len(audio) // 512)]
    _run_frames(benchmark, lambda window: model.score(stream, window), windows)


CALLS = 32


@pytest.fixture(scope="module")
def silero_and_windows():
    from parley.core.silero import SileroVad

    path = load_settings().models_dir / "silero-vad" / "silero_vad.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not there: run `parley models fetch --for test`")
    model = SileroVad(path)
    audio = np.concatenate(FRAMES)
    windows = [audio[(k % 10) * 512:(k % 10 + 1) * 512] for k in range(CALLS)]
    return model, [model.new_stream(RATE) for _ in range(CALLS)], windows


def test_silero_32_calls_one_at_a_time(benchmark, silero_and_windows):
    model, streams, windows = silero_and_windows
    benchmark.group = f"silero-{CALLS}-calls-one-window-each"
    benchmark(lambda: [model.score(s, w) for s, w in zip(streams, windows)])


def test_silero_32_calls_in_one_batch(benchmark, silero_and_windows):
    model, streams, windows = silero_and_windows
    benchmark.group = f"silero-{CALLS}-calls-one-window-each"
    benchmark(lambda: model.score_batch(streams, windows))
