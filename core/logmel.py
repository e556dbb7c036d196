"""Whisper's log-mel spectrogram in numpy, for models that read Whisper features (Smart Turn).

It runs off the 20 ms frame path (once per end-of-turn check), so numpy is the right tool; it
must match Whisper bit for bit in meaning, because the model was trained on exactly these
features: 400-point periodic-Hann STFT every 160 samples, centred with reflect padding and the
last frame dropped; power spectrum; 80 Slaney mel bands (librosa's ``filters.mel``, as
openai-whisper ships them); log10 floored at 1e-10; clamped to 8 decades below the loudest bin;
then ``(x + 4) / 4``. The STFT is computed in float64 so the only difference from a float64 DFT
is rounding (see ``tests/test_logmel.py`` for the tolerances reached).
"""

import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
LOG_FLOOR = 1e-10
"""Smallest mel power before log10: silence maps to -10, not -inf."""
DYNAMIC_RANGE = 8.0
"""Decades kept below the loudest bin (80 dB); quieter bins are raised to that level."""
MIN_SAMPLES = N_FFT // 2 + 1
"""Reflect padding by half a window needs at least this many samples (torch.stft refuses fewer)."""


class LogMelInputError(ValueError):
    """Audio the log-mel front end cannot turn into features."""


def hz_to_mel(hz):
    """Slaney's mel scale (librosa ``htk=False``): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def mel_to_hz(mel):
    """The inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filterbank(sample_rate=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS):
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` with Slaney area normalisation.

    The same matrix as ``librosa.filters.mel(sr, n_fft, n_mels)`` (fmin 0, fmax sr/2), which is
    what openai-whisper stores in its ``mel_filters.npz``.
    """
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


def periodic_hann(length):
    """``torch.hann_window(length)`` (periodic), as Whisper's STFT uses."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def frame_count(num_samples):
    """Feature frames Whisper makes from ``num_samples``: one per hop (the last STFT frame is dropped)."""
    return num_samples // HOP_LENGTH


class _Workspace:
    """Scratch arrays for one input length: reused, so a call does not fault in ~10 MB of fresh pages."""

    def __init__(self, num_samples):
        frames = frame_count(num_samples)
        self.num_samples = num_samples
        self.padded = np.empty(num_samples + N_FFT, np.float64)
        self.frames = np.empty((frames, N_FFT), np.float64)
        self.spectrum = np.empty((frames, N_FFT // 2 + 1), np.complex128)
        self.power = np.empty((frames, N_FFT // 2 + 1), np.float64)
        self.scratch = np.empty((frames, N_FFT // 2 + 1), np.float64)
        self.mel = np.empty((frames, N_MELS), np.float64)


class LogMelSpectrogram:
    """Whisper's front end with its window and filterbank computed once.

    Call it with 16 kHz float audio; it returns float32 features ``[80, len(audio) // 160]``, or
    writes them into ``out``. Scratch space is kept per thread for the last length seen (the
    Smart Turn window is always 8 s), so one instance may serve several threads.
    """

    def __init__(self):
        self.window = periodic_hann(N_FFT)
        self.filters = mel_filterbank()
        self._filters_by_bin = np.ascontiguousarray(self.filters.T)
        self._local = threading.local()

    def __call__(self, audio, out=None):
        audio = check_audio(audio)
        work = self._workspace(audio.size)
        half = N_FFT // 2
        work.padded[half:-half] = audio
        work.padded[:half] = audio[half:0:-1]
        work.padded[-half:] = audio[-2:-half - 2:-1]
        np.multiply(sliding_window_view(work.padded, N_FFT)[::HOP_LENGTH][:-1], self.window, out=work.frames)
        np.fft.rfft(work.frames, axis=-1, out=work.spectrum)
        np.square(work.spectrum.real, out=work.power)
        np.square(work.spectrum.imag, out=work.scratch)
        work.power += work.scratch
        log_spec = np.matmul(work.power, self._filters_by_bin, out=work.mel)
        np.maximum(log_spec, LOG_FLOOR, out=log_spec)
        np.log10(log_spec, out=log_spec)
        np.maximum(log_spec, log_spec.max() - DYNAMIC_RANGE, out=log_spec)
        log_spec += 4.0
        log_spec /= 4.0
        if out is None:
            return np.ascontiguousarray(log_spec.T, dtype=np.float32)
        out[...] = log_spec.T
        return out

    def _workspace(self, num_samples):
        work = getattr(self._local, "work", None)
        if work is None or work.num_samples != num_samples:
            work = self._local.work = _Workspace(num_samples)
        return work


def check_audio(audio):
    """``audio`` as a 1-D float array Whisper's STFT can take, or a ``LogMelInputError`` saying what is wrong."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise LogMelInputError(f"audio must be one channel (1-D), got shape {audio.shape}: mix down or pick a channel")
    if not np.issubdtype(audio.dtype, np.floating):
        raise LogMelInputError(
            f"audio must be float samples in [-1, 1], got {audio.dtype}: convert PCM16 with "
            "parley.core.codecs.pcm16_to_float32 first"
        )
    if audio.size < MIN_SAMPLES:
        raise LogMelInputError(f"audio needs at least {MIN_SAMPLES} samples (half an STFT window), got {audio.size}")
    if not np.isfinite(audio).all():
        raise LogMelInputError("audio holds NaN or infinite samples: replace them (e.g. with 0) before computing features")
    return audio
