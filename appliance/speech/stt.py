"""Speech to text: one caller turn in, its words out, through a sherpa-onnx offline model.

``Recognizer.from_dir(model_dir)`` tells the model family by the files it finds (today Whisper:
``<name>-encoder.onnx``, ``<name>-decoder.onnx``, ``<name>-tokens.txt``, as ``parley models fetch``
converts them) and ``transcribe(samples, sample_rate)`` returns a ``Transcript``. Input that
cannot hold speech gives empty text instead of reaching the engine: sherpa-onnx crashes the
process (SIGSEGV) on less than one 10 ms frame.
"""

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parley.appliance.speech.audio import InvalidAudio, as_samples, check_rate, resample
from parley.appliance.speech.provider import ProviderChoice, choose_provider

log = logging.getLogger("parley.speech.stt")

MODEL_RATE = 16000
"""Every sherpa-onnx offline model listens at 16 kHz; other rates are resampled first."""

MIN_AUDIO_SECONDS = 0.1
"""Shorter input holds no word: it gives empty text without running the engine."""

MAX_PIECE_SECONDS = 28.0
"""sherpa-onnx's Whisper keeps only the first 29.5 s of a clip; a longer turn (the endpointer
allows 30 s plus pre-roll) is transcribed in pieces cut at the quietest moment before this."""

NON_SPEECH = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\]|\*[^*]*\*|♪+)\s*")
"""Whisper's sound annotations: ``(buzzer)``, ``[ Silence ]``, ``*coughs*``, ``♪``. Not words the caller
said; on near-silence they are hallucinations, so they are dropped from the text."""


class UnsupportedModelDir(ValueError):
    """A model directory whose files match no model family this recognizer can load."""


@dataclass(frozen=True)
class RecognizerSettings:
    """How a recognizer runs; defaults are what the appliance uses."""

    num_threads: int = 1
    """onnxruntime threads; the STT and TTS workers each take one of the appliance's cores."""
    tail_paddings: int = 500
    """Zero frames (10 ms each) Whisper encodes after the real audio; sherpa-onnx's own default
    (-1, as is 0) is 1000. Measured by ``.venv/bin/python scripts/evaluate_stt_tail_paddings.py``
    (defaults: 61 telephone turns, 30 Piper + 30 espeak-ng caller lines and beckett.wav, 8 kHz
    G.711, 3.1 s mean with pre-roll and hangover; whisper-tiny.en, 1 thread, 2-core machine):

    ======  =======  ===========  =======  =========  =======  ======
    frames  WER      WER 1st try  retried  annotated  mean ms  p95 ms
    ======  =======  ===========  =======  =========  =======  ======
    1000    21.4%    21.4%        0        0          471      688
    500     19.5%    21.1%        1        0          362      574
    300     20.0%    27.8%        5        0          347      626
    200     20.5%    28.4%        5        0          323      627
    100     20.3%    29.2%        6        1          310      598
    50      21.4%    32.7%        7        1          312      701
    20      24.1%    43.2%        11       1          343      770
    10      25.9%    46.8%        13       1          365      751
    ======  =======  ===========  =======  =========  =======  ======

    (WER on the Piper lines 3.9-4.5% down to 100 frames; espeak-ng's robotic voice costs the rest.)
    500 is the most accurate, saves 23% of the time of 1000 and needs the retry once in 61 turns.
    Fewer frames save about 50 ms more at best, but Whisper then loops more often (the 1st-try WER),
    drops the last digits of a number (200: "770" for "7 7 0 9 3 1") and, from 100 down,
    invents sounds ("[speaking in foreign language]") where words were."""
    retry_tail_paddings: int | None = 1000
    """When a decode runs into Whisper's token limit (6 per second of audio) it found no end of
    text: a repetition loop ("No. No. No. No."), which short paddings provoke. That piece is decoded
    again with this padding; None never retries."""
    language: str = "en"
    """What multilingual Whisper models transcribe; detecting it on a short telephone turn is
    unreliable, so the agent's language is given. English-only models (``*.en``) ignore it."""
    provider: str | None = None
    """``cpu``, ``cuda`` or None for ``choose_provider()``'s choice."""

    def __post_init__(self):
        if not (isinstance(self.num_threads, int) and self.num_threads >= 1):
            raise ValueError(f"num_threads must be a positive integer, not {self.num_threads!r}")
        for name in ("tail_paddings", "retry_tail_paddings"):
            value = getattr(self, name)
            if value is None and name == "retry_tail_paddings":
                continue
            if not (isinstance(value, int) and (value == -1 or value > 0)):
                raise ValueError(f"{name} must be -1 (sherpa-onnx's 1000) or a positive number of frames, "
                                 f"not {value!r} (sherpa-onnx reads 0 as 1000 too)")


@dataclass(frozen=True)
class Transcript:
    """What was said in one clip, and what it cost."""

    text: str
    """The words, with sound annotations removed; empty when nothing was said."""
    audio_seconds: float
    compute_seconds: float
    """Wall time spent in the engine (resampling included)."""
    dropped: tuple = ()
    """Sound annotations removed from the engine's text (``(buzzer)``), kept for evaluation and logs."""
    retried: bool = False
    """A piece hit the token limit and was decoded again with ``retry_tail_paddings``."""


@dataclass(frozen=True)
class WhisperFiles:
    encoder: Path
    decoder: Path
    tokens: Path


def find_whisper_files(model_dir):
    """The Whisper files in ``model_dir``, or None when there are none; full precision before int8."""
    model_dir = Path(model_dir)
    found = []
    for suffix in ("", ".int8"):
        for encoder in sorted(model_dir.glob(f"*-encoder{suffix}.onnx")):
            stem = encoder.name[: -len(f"-encoder{suffix}.onnx")]
            decoder, tokens = model_dir / f"{stem}-decoder{suffix}.onnx", model_dir / f"{stem}-tokens.txt"
            if decoder.is_file() and tokens.is_file():
                found.append(WhisperFiles(encoder, decoder, tokens))
    stems = {files.tokens.name for files in found}
    if len(stems) > 1:
        raise UnsupportedModelDir(f"{model_dir} holds more than one Whisper model ({', '.join(sorted(stems))}): "
                                  "keep one model per directory")
    return found[0] if found else None


class Recognizer:
    """A loaded sherpa-onnx offline recognizer; one per process (it is not shared across threads)."""

    def __init__(self, engine, *, family, model_dir, settings, provider):
        self._engine = engine
        self.family = family
        """``whisper``."""
        self.model_dir = Path(model_dir)
        self.settings = settings
        self._provider = provider
        retry = settings.retry_tail_paddings
        self._may_retry = retry is not None and _frames(retry) != _frames(settings.tail_paddings)

    @property
    def provider(self) -> ProviderChoice:
        """Where the model runs and why (``cpu`` on the PyPI sherpa-onnx, whatever the GPU)."""
        return self._provider

    @classmethod
    def from_dir(cls, model_dir, settings=RecognizerSettings()):
        """Load the model in ``model_dir``, telling its family by its files."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir} not found: no speech-to-text model there; run `parley models fetch`")
        whisper = find_whisper_files(model_dir)
        if whisper is not None:
            return cls.from_whisper(whisper, settings)
        present = sorted(p.name for p in model_dir.iterdir())[:12]
        raise UnsupportedModelDir(
            f"{model_dir} holds no speech-to-text model this appliance can load: found "
            f"{', '.join(present) or 'nothing'}; expected a sherpa-onnx Whisper model "
            "(<name>-encoder.onnx, <name>-decoder.onnx, <name>-tokens.txt), as `parley models fetch` writes")

    @classmethod
    def from_whisper(cls, files, settings=RecognizerSettings()):
        import sherpa_onnx

        provider = choose_provider(settings.provider)
        engine = sherpa_onnx.OfflineRecognizer.from_whisper(
            encoder=str(files.encoder), decoder=str(files.decoder), tokens=str(files.tokens),
            language=settings.language,
            num_threads=settings.num_threads, tail_paddings=settings.tail_paddings, provider=provider.provider,
        )
        log.info("stt_loaded family=whisper model=%s threads=%d tail_paddings=%d provider=%s reason=%r",
                 files.encoder.parent, settings.num_threads, settings.tail_paddings, provider.provider, provider.reason)
        return cls(engine, family="whisper", model_dir=files.encoder.parent, settings=settings, provider=provider)

    def transcribe(self, samples, sample_rate):
        """The words in ``samples`` (float32 in [-1, 1], mono) at ``sample_rate``.

        Rates other than 16 kHz are resampled (8 kHz telephone audio, or any rate of
        ``parley.core.resample.SUPPORTED_RATES``; others raise ``UnsupportedRateError``).
        Empty or shorter than ``MIN_AUDIO_SECONDS``: empty text. NaN or infinite samples, or not
        mono: ``InvalidAudio``.
        """
        samples = as_samples(samples)
        check_rate(sample_rate)
        audio_seconds = len(samples) / sample_rate
        if audio_seconds < MIN_AUDIO_SECONDS:
            return Transcript("", audio_seconds, 0.0)
        started = time.perf_counter()
        samples = resample(samples, sample_rate, MODEL_RATE)
        texts, dropped, retried = [], [], False
        for piece in _pieces(samples, MODEL_RATE, MAX_PIECE_SECONDS):
            if len(piece) < MIN_AUDIO_SECONDS * MODEL_RATE:
                continue
            result = self._decode(piece)
            if self._may_retry and len(result.tokens) >= _token_limit(piece):
                first = result.text
                result = self._decode(piece, tail_paddings=self.settings.retry_tail_paddings)
                retried = True
                log.info("stt_retry reason=token_limit audio_s=%.2f tail_paddings=%d first=%r then=%r",
                         len(piece) / MODEL_RATE, self.settings.retry_tail_paddings, first, result.text)
            text, annotations = clean_text(result.text)
            texts.append(text)
            dropped.extend(annotations)
        return Transcript(" ".join(t for t in texts if t), audio_seconds, time.perf_counter() - started,
                          tuple(dropped), retried)

    def _decode(self, piece, tail_paddings=None):
        if tail_paddings is not None:
            self._set_tail_paddings(tail_paddings)
        try:
            stream = self._engine.create_stream()
            stream.accept_waveform(MODEL_RATE, piece)
            self._engine.decode_stream(stream)
            return stream.result
        finally:
            if tail_paddings is not None:
                self._set_tail_paddings(self.settings.tail_paddings)

    def _set_tail_paddings(self, frames):
        config = self._engine.config
        config.model_config.whisper.tail_paddings = frames
        self._engine.recognizer.set_config(config)


def clean_text(raw):
    """The engine's text without sound annotations, and the annotations dropped."""
    dropped = tuple(m.group(1).strip() for m in NON_SPEECH.finditer(raw))
    text = " ".join(NON_SPEECH.sub(" ", raw).split())
    if not any(c.isalnum() for c in text):  # only punctuation left ("...", "!!!")
        text = ""
    return text, dropped


def _frames(tail_paddings):
    return 1000 if tail_paddings == -1 else tail_paddings


def _token_limit(piece):
    """The most tokens sherpa-onnx's greedy Whisper decoder emits for ``piece`` (16 kHz): 6 per
    second of real audio. Estimated two frames low, so a decode that hit the limit is never missed."""
    frames = len(piece) // 160 - 2
    return max(1, int(frames / 100 * 6))


def _pieces(samples, rate, max_seconds):
    """Cut ``samples`` into pieces of at most ``max_seconds``, each cut at the quietest 50 ms of
    the last quarter of its span, so a word is rarely split."""
    limit = int(max_seconds * rate)
    window = rate // 20
    start = 0
    while len(samples) - start > limit:
        search_from = start + limit * 3 // 4
        span = samples[search_from : start + limit]
        n = len(span) // window
        energy = (span[: n * window].reshape(n, window) ** 2).sum(axis=1)
        cut = search_from + int(np.argmin(energy)) * window + window // 2
        yield samples[start:cut]
        start = cut
    yield samples[start:]


__all__ = ["InvalidAudio", "Recognizer", "RecognizerSettings", "Transcript", "UnsupportedModelDir"]
