"""Smart Turn's cost per end-of-turn check: the log-mel front end and the model, each beside its peer.

Front end: our numpy log-mel (float64 STFT) vs faster-whisper's ``FeatureExtractor`` (float32)
on the 8 s window the model reads. Model: eight calls' audio scored one call at a time vs in one
batch (divide by 8 for the cost per call). Run with
``.venv/bin/python -m pytest tests/bench/test_bench_acoustic_turn.py --benchmark-only``.
"""

import wave

import numpy as np
import pytest

from parley.appliance.config import load_settings
from parley.core.acoustic_turn import MODEL_RELATIVE_PATH, WINDOW_SAMPLES, AcousticTurnSettings, SmartTurnModel
from parley.core.logmel import LogMelSpectrogram

CALLS = 8


def _models_file(*relative):
    path = load_settings().models_dir.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"{path} is not there: run `parley models fetch --for test` (make bench does)")
    return path


@pytest.fixture(scope="module")
def window():
    """The last 8 s of beckett.wav, as the model would read it."""
    with wave.open(str(_models_file("beckett", "beckett.wav"))) as wav:
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    return audio[-WINDOW_SAMPLES:]


@pytest.fixture(scope="module")
def model():
    return SmartTurnModel(_models_file(*MODEL_RELATIVE_PATH), intra_op_threads=AcousticTurnSettings().intra_op_threads)


def test_log_mel_numpy(benchmark, window):
    benchmark.group = "smart-turn"
    log_mel = LogMelSpectrogram()
    assert benchmark(log_mel, window).shape == (80, 800)


def test_log_mel_faster_whisper(benchmark, window):
    benchmark.group = "smart-turn"
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor").FeatureExtractor()
    assert benchmark(feature_extractor, window, padding=0).shape == (80, 800)


def test_score_8_calls_one_at_a_time(benchmark, model, window):
    benchmark.group = "smart-turn"
    calls = [window[i * 1600:] for i in range(CALLS)]
    benchmark.pedantic(lambda: [model.score(audio) for audio in calls], rounds=5, warmup_rounds=1)


def test_score_8_calls_in_one_batch(benchmark, model, window):
    benchmark.group = "smart-turn"
    calls = [window[i * 1600:] for i in range(CALLS)]
    benchmark.pedantic(model.score_batch, args=(calls,), rounds=5, warmup_rounds=1)
