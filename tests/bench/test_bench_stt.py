"""Speech-to-text on beckett.wav (10 s): the converted Whisper tiny.en in sherpa-onnx vs faster-whisper.

Both read the same fetched weights (faster-whisper the CTranslate2 source, sherpa-onnx the
ONNX graphs converted from it), on 2 threads. Run with ``make bench``.
"""

import re
import wave

import numpy as np
import pytest

from parley.appliance.config import load_settings

BECKETT = "ever tried ever failed no matter try again fail again fail better"


def _models_file(*relative):
    path = load_settings().models_dir.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"{path} is not there: run `parley models fetch --for test` (make bench does)")
    return path


def _words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


@pytest.fixture(scope="module")
def beckett():
    with wave.open(str(_models_file("beckett", "beckett.wav"))) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return rate, pcm.astype(np.float32) / 32768.0


def _bench(benchmark, run):
    benchmark.group = "stt-beckett"
    text = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    # same words (punctuation and case aside), give or take one
    assert len(set(_words(text)) ^ set(BECKETT.split())) <= 1, text


def test_sherpa_onnx_whisper_tiny_en(benchmark, beckett):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    d = _models_file("whisper-tiny.en")
    for name in ("tiny.en-encoder.onnx", "tiny.en-decoder.onnx", "tiny.en-tokens.txt"):
        _models_file("whisper-tiny.en", name)
    recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(d / "tiny.en-encoder.onnx"),
        decoder=str(d / "tiny.en-decoder.onnx"),
        tokens=str(d / "tiny.en-tokens.txt"),
        num_threads=2,
    )
    rate, samples = beckett

    def run():
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, samples)
        recognizer.decode_stream(stream)
        return stream.result.text

    _bench(benchmark, run)


@pytest.mark.parametrize("beam_size", [1, 5])
def test_faster_whisper_peer(benchmark, beckett, beam_size):
    faster_whisper = pytest.importorskip("faster_whisper")
    ct2 = _models_file("whisper-tiny.en", "ct2")
    _models_file("whisper-tiny.en", "ct2", "model.bin")
    model = faster_whisper.WhisperModel(str(ct2), device="cpu", compute_type="int8", cpu_threads=2)
    rate, samples = beckett
    assert rate == 16000

    def run():
        segments, _ = model.transcribe(samples, beam_size=beam_size, language="en")
        return " ".join(s.text for s in segments)

    _bench(benchmark, run)
