"""Whisper's log-mel front end, checked against two references on real and synthetic audio.

References: faster-whisper's ``FeatureExtractor`` (float32, its own filterbank and STFT) called
with ``padding=0`` so that it computes plain Whisper features, and a slow float64 DFT written out
here from the definition. Max abs error in the scaled features, measured here (numpy 2.4,
faster-whisper 1.2.1): vs faster-whisper 4.9e-6 on beckett and 8.9e-6 on the synthetic signal
(its float32 STFT; it differs from the float64 DFT by the same amount); vs the float64 DFT 6e-8
on both, which is the rounding of our float32 output. The tolerances leave a margin over those.
"""

import wave

import numpy as np
import pytest

from conftest import fetched
from parley.core.logmel import (
    HOP_LENGTH,
    MIN_SAMPLES,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    LogMelInputError,
    LogMelSpectrogram,
    frame_count,
    mel_filterbank,
    periodic_hann,
)

FASTER_WHISPER_TOLERANCE = 2e-5
FLOAT64_DFT_TOLERANCE = 2.5e-7
"""Two float32 steps at the features' largest magnitude (about 1.5)."""


@pytest.fixture(scope="module")
def log_mel():
    return LogMelSpectrogram()


@pytest.fixture(scope="module")
def beckett(models_dir):
    with wave.open(str(fetched(models_dir, "beckett", "beckett.wav"))) as wav:
        assert wav.getframerate() == SAMPLE_RATE
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def synthetic_signal():
    """3 s: a chirp, two tones, a stretch of digital silence (exercises the floor) and quiet noise."""
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    chirp = 0.5 * np.sin(2 * np.pi * (100 * t + 1300 * t**2))
    tones = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3500 * t)
    signal = np.where(t < 1.0, chirp, tones)
    signal[int(2.0 * SAMPLE_RATE): int(2.5 * SAMPLE_RATE)] = 0.0
    signal[int(2.5 * SAMPLE_RATE):] = np.random.default_rng(7).standard_normal(int(0.5 * SAMPLE_RATE)) * 1e-3
    return signal.astype(np.float32)


def faster_whisper_features(audio):
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
    return feature_extractor.FeatureExtractor(feature_size=N_MELS)(audio, padding=0)


def slow_float64_features(audio):
    """Whisper's log-mel from the definitions, in float64, one frame and one band at a time."""
    x = np.asarray(audio, dtype=np.float64)
    half = N_FFT // 2
    padded = np.concatenate([x[1: half + 1][::-1], x, x[-half - 1: -1][::-1]])
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    bins = np.arange(N_FFT // 2 + 1)
    cos_basis = np.cos(2 * np.pi * np.outer(n, bins) / N_FFT)
    sin_basis = np.sin(2 * np.pi * np.outer(n, bins) / N_FFT)
    frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH - 1
    power = np.empty((frames, len(bins)))
    for t in range(frames):
        segment = padded[t * HOP_LENGTH: t * HOP_LENGTH + N_FFT] * window
        power[t] = (segment @ cos_basis) ** 2 + (segment @ sin_basis) ** 2

    def hz_to_mel(f):
        return 3 * f / 200 if f < 1000 else 15 + np.log(f / 1000) * 27 / np.log(6.4)

    def mel_to_hz(m):
        return 200 * m / 3 if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)

    edges = [mel_to_hz(m) for m in np.linspace(hz_to_mel(0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)]
    bin_hz = bins * SAMPLE_RATE / N_FFT
    filters = np.zeros((N_MELS, len(bins)))
    for band in range(N_MELS):
        low, centre, high = edges[band: band + 3]
        for k, f in enumerate(bin_hz):
            rising, falling = (f - low) / (centre - low), (high - f) / (high - centre)
            filters[band, k] = max(0.0, min(rising, falling)) * 2 / (high - low)
    log_spec = np.log10(np.maximum(filters @ power.T, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def test_window_is_torchs_periodic_hann():
    assert np.allclose(periodic_hann(N_FFT), np.hanning(N_FFT + 1)[:-1], rtol=0, atol=1e-15)


def test_filterbank_is_the_slaney_filterbank_faster_whisper_builds():
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
    reference = feature_extractor.FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=N_MELS)
    assert mel_filterbank().shape == (N_MELS, N_FFT // 2 + 1)
    assert np.abs(mel_filterbank() - reference).max() < 1e-12


@pytest.mark.models
def test_beckett_features_match_faster_whisper(log_mel, beckett):
    ours, reference = log_mel(beckett), faster_whisper_features(beckett)
    assert ours.shape == reference.shape == (N_MELS, len(beckett) // HOP_LENGTH)
    assert np.abs(ours - reference).max() < FASTER_WHISPER_TOLERANCE


def test_synthetic_features_match_faster_whisper(log_mel):
    signal = synthetic_signal()
    assert np.abs(log_mel(signal) - faster_whisper_features(signal)).max() < FASTER_WHISPER_TOLERANCE


@pytest.mark.models
def test_beckett_features_match_a_float64_dft(log_mel, beckett):
    excerpt = beckett[: 3 * SAMPLE_RATE]
    assert np.abs(log_mel(excerpt) - slow_float64_features(excerpt)).max() < FLOAT64_DFT_TOLERANCE


def test_synthetic_features_match_a_float64_dft(log_mel):
    signal = synthetic_signal()
    assert np.abs(log_mel(signal) - slow_float64_features(signal)).max() < FLOAT64_DFT_TOLERANCE


@pytest.mark.parametrize("samples", [MIN_SAMPLES, N_FFT, 16000, 16159, 16160, 128000])
def test_one_frame_per_hop_with_the_last_stft_frame_dropped(log_mel, samples):
    audio = np.random.default_rng(samples).standard_normal(samples).astype(np.float32) * 0.1
    assert log_mel(audio).shape == (N_MELS, frame_count(samples)) == (N_MELS, samples // HOP_LENGTH)


def test_eight_seconds_make_the_800_frames_smart_turn_reads(log_mel):
    assert log_mel(np.zeros(8 * SAMPLE_RATE, np.float32)).shape == (80, 800)


def test_digital_silence_sits_on_the_log_floor(log_mel):
    features = log_mel(np.zeros(SAMPLE_RATE, np.float32))
    assert np.all(features == np.float32((np.log10(1e-10) + 4.0) / 4.0))


def test_range_is_clamped_to_eight_decades_below_the_loudest_bin(log_mel):
    features = log_mel(synthetic_signal())
    assert features.max() - features.min() == pytest.approx(8.0 / 4.0, abs=1e-6)


def test_float64_input_gives_the_float32_result(log_mel):
    signal = synthetic_signal()
    assert np.abs(log_mel(signal.astype(np.float64)) - log_mel(signal)).max() < 1e-6
    assert log_mel(signal.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize(
    ("audio", "says"),
    [
        (np.zeros(0, np.float32), "at least 201 samples"),
        (np.zeros(MIN_SAMPLES - 1, np.float32), "at least 201 samples"),
        (np.zeros(16000, np.int16), "pcm16_to_float32"),
        (np.zeros((2, 16000), np.float32), "one channel"),
        (np.array([0.1] * 500 + [np.nan] + [0.1] * 500, np.float32), "NaN"),
        (np.array([0.1] * 500 + [np.inf] + [0.1] * 500, np.float32), "NaN or infinite"),
    ],
    ids=["empty", "too-short", "int16", "stereo", "nan", "inf"],
)
def test_unusable_audio_raises_a_typed_error_that_says_what_to_do(log_mel, audio, says):
    with pytest.raises(LogMelInputError, match=says):
        log_mel(audio)


def test_features_can_be_written_into_a_callers_buffer(log_mel):
    signal = synthetic_signal()
    out = np.full((N_MELS, frame_count(signal.size)), np.nan, np.float32)
    assert log_mel(signal, out) is out
    assert np.array_equal(out, log_mel(signal))


def test_one_instance_serves_several_threads_at_once(log_mel):
    from concurrent.futures import ThreadPoolExecutor

    signals = [synthetic_signal()[: n * SAMPLE_RATE // 2] for n in (2, 3, 4, 5, 6)] * 8
    expected = [LogMelSpectrogram()(s) for s in signals]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(log_mel, signals))
    assert all(np.array_equal(r, e) for r, e in zip(results, expected))
