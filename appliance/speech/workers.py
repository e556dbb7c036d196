"""The speech services on the bus: ``SttWorker`` ("stt") and ``TtsWorker`` ("tts").

Each loads its model once in ``setup()`` from the appliance's ``models/`` and then serves jobs:
``stt_request`` + PCM16 gives one ``stt_final``; ``tts_request`` streams ``tts_audio`` chunks
(PCM16, one per sentence, each placed by ``offset_samples``) and ends with ``tts_done``. A cancel
(barge-in) stops a TTS job between sentences, or inside the one being synthesized.

Environment (the supervisor's ``WorkerSpec.env`` sets it per service):
``PARLEY_STT_MODEL`` / ``PARLEY_TTS_VOICE``: a directory name under ``models/`` or a path;
``PARLEY_SPEECH_THREADS``: onnxruntime threads per worker; ``PARLEY_SPEECH_PROVIDER``: cpu/cuda/auto.
"""

import logging
import os
import time
from pathlib import Path

import numpy as np

from parley.appliance.bus.worker import Worker
from parley.appliance.config import load_settings
from parley.appliance.speech.stt import Recognizer, RecognizerSettings
from parley.appliance.speech.tts import Synthesizer
from parley.appliance.speech.voices import DEFAULT_VOICE, find_voice
from parley.core.codecs import float32_to_pcm16, pcm16_to_float32

log = logging.getLogger("parley.speech.workers")

DEFAULT_STT_MODEL = "whisper-tiny.en"
"""The directory under ``models/`` the STT worker loads unless ``PARLEY_STT_MODEL`` names another."""

DEFAULT_THREADS = 1
"""One onnxruntime thread per speech worker: an STT and a TTS worker then share two cores."""


def speech_threads():
    value = os.environ.get("PARLEY_SPEECH_THREADS", str(DEFAULT_THREADS))
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"PARLEY_SPEECH_THREADS={value!r}: give a positive number of threads")
    return threads


def model_path(name, models_dir):
    """``name`` as a path: a directory under ``models_dir`` unless it is a path itself."""
    path = Path(name).expanduser()
    return path if path.is_absolute() or len(path.parts) > 1 else Path(models_dir) / name


class SttWorker(Worker):
    """Transcribes one caller turn per job."""

    service = "stt"

    def setup(self):
        settings = load_settings()
        model_dir = model_path(os.environ.get("PARLEY_STT_MODEL") or DEFAULT_STT_MODEL, settings.models_dir)
        self.recognizer = Recognizer.from_dir(model_dir, RecognizerSettings(num_threads=speech_threads()))
        # onnxruntime's first run allocates and plans: take it now, not on a caller's first turn.
        started = time.monotonic()
        self.recognizer.transcribe(np.random.default_rng(0).normal(0.0, 1e-3, 16000).astype(np.float32), 16000)
        log.info("stt_ready worker=%s model=%s provider=%s reason=%r warm_s=%.2f", self.name, model_dir,
                 self.recognizer.provider.provider, self.recognizer.provider.reason, time.monotonic() - started)

    def handle(self, message, audio):
        if message.type != "stt_request":
            raise ValueError(f"the stt service takes stt_request, not {message.type}")
        language = message.body.get("language")
        if language and not language.lower().startswith("en") and self.recognizer.model_dir.name.endswith(".en"):
            raise ValueError(f"{self.recognizer.model_dir.name} transcribes English only, not {language!r}: "
                             "set PARLEY_STT_MODEL to a multilingual model")
        samples = pcm16_to_float32(audio)
        transcript = self.recognizer.transcribe(samples, message.body["sample_rate"])
        log.info("stt_final call_id=%s turn_id=%s audio_s=%.2f compute_s=%.3f words=%d retried=%s dropped=%r",
                 message.call_id, message.turn_id, transcript.audio_seconds, transcript.compute_seconds,
                 len(transcript.text.split()), transcript.retried, transcript.dropped)
        return [self.reply(message, "stt_final", {"text": transcript.text})]


class TtsWorker(Worker):
    """Speaks the agent's reply, streaming one chunk per sentence."""

    service = "tts"

    def setup(self):
        settings = load_settings()
        self.models_dir = settings.models_dir
        self.threads = speech_threads()
        self.default_voice = os.environ.get("PARLEY_TTS_VOICE") or DEFAULT_VOICE
        self.voices = {}
        self.synthesizer(self.default_voice)
        log.info("tts_ready worker=%s voice=%s", self.name, self.default_voice)

    def synthesizer(self, name):
        """The loaded voice ``name`` (a voice of ``parley voices``, or a path), loading it on first use."""
        if name not in self.voices:
            path = model_path(name, self.models_dir)
            voice_dir = path if path.is_dir() else find_voice(self.models_dir, name).path
            self.voices[name] = Synthesizer(voice_dir, num_threads=self.threads)
        return self.voices[name]

    def handle(self, message, audio):
        if message.type != "tts_request":
            raise ValueError(f"the tts service takes tts_request, not {message.type}")
        synthesizer = self.synthesizer(message.body.get("voice") or self.default_voice)
        rate = message.body.get("sample_rate") or synthesizer.sample_rate
        total, first = 0, True
        for chunk in synthesizer.stream(message.body["text"], rate, cancelled=self.cancelled):
            if first:
                first = False
                log.info("tts_first_audio call_id=%s turn_id=%s sentence=0 samples=%d",
                         message.call_id, message.turn_id, len(chunk.samples))
            total = chunk.offset_samples + len(chunk.samples)
            yield self.reply(message, "tts_audio",
                             {"sample_rate": rate, "offset_samples": chunk.offset_samples,
                              "sentence_index": chunk.sentence_index},
                             audio=float32_to_pcm16(chunk.samples))
        if self.cancelled.is_set():
            log.info("tts_cancelled call_id=%s turn_id=%s samples=%d", message.call_id, message.turn_id, total)
            return
        log.info("tts_done call_id=%s turn_id=%s samples=%d rate=%d", message.call_id, message.turn_id, total, rate)
        yield self.reply(message, "tts_done", {"samples": total})
