"""The voice catalog: every voice in ``models/`` that sherpa-onnx can load, and a sample of each.

A voice is a directory holding a Piper voice converted for sherpa-onnx (``model.onnx`` with its
metadata, ``tokens.txt``), as ``parley models fetch`` writes it. Its name is the directory's
name; "en_US-joe-medium" finds "voice-en_US-joe-medium" too.
"""

import logging
import wave
from dataclasses import dataclass
from pathlib import Path

from parley.appliance.models.piper_voice import VoiceConversionError, check_voice_dir

DEFAULT_VOICE = "voice-en_US-joe-medium"
"""The voice the TTS worker speaks with unless ``PARLEY_TTS_VOICE`` or a request names another."""

SAMPLE_TEXT = "Thank you for calling Acme. How can I help you today?"
"""What ``parley voices NAME --sample`` says unless given ``--text``."""

NAME_PREFIX = "voice-"

log = logging.getLogger("parley.speech.voices")


class UnknownVoice(LookupError):
    """No voice of that name in ``models/``; the message lists the ones there are."""


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    path: Path
    sample_rate: int
    language: str
    espeak_voice: str
    speakers: int
    size_bytes: int
    """``model.onnx`` and ``tokens.txt``: what is loaded."""


def voice_info(voice_dir):
    """The catalog entry for ``voice_dir``; raises as ``check_voice_dir`` does when it is no voice."""
    voice_dir = Path(voice_dir)
    props = check_voice_dir(voice_dir)
    size = sum((voice_dir / name).stat().st_size for name in ("model.onnx", "tokens.txt"))
    return VoiceInfo(voice_dir.name, voice_dir, int(props["sample_rate"]), props["language"],
                     props.get("voice", ""), int(props["n_speakers"]), size)


def list_voices(models_dir):
    """Every directory directly under ``models_dir`` that passes ``check_voice_dir``, by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    voices = []
    for path in sorted(models_dir.iterdir()):
        if path.is_dir() and (path / "model.onnx").is_file() and (path / "tokens.txt").is_file():
            try:
                voices.append(voice_info(path))
            except VoiceConversionError:
                continue  # an ONNX model of another kind
            except Exception as exc:  # an unreadable model.onnx: say so, keep listing the others
                log.warning("voice_unreadable path=%s reason=%s: run `parley models fetch --force`", path, exc)
    return voices


def find_voice(models_dir, name):
    """The voice called ``name`` (with or without the ``voice-`` prefix)."""
    voices = list_voices(models_dir)
    for voice in voices:
        if name in (voice.name, voice.name.removeprefix(NAME_PREFIX)):
            return voice
    known = ", ".join(v.name for v in voices) or "none"
    raise UnknownVoice(f"no voice named {name!r} in {models_dir} (voices there: {known}); "
                       "run `parley voices` to list them, `parley models fetch` to fetch the default")


def render_sample(voice, text=SAMPLE_TEXT, out_path=None, *, sample_rate=None, num_threads=1):
    """Speak ``text`` with ``voice`` (a ``VoiceInfo``) into a 16-bit mono WAV at ``sample_rate``
    (default the voice's); returns the path and the seconds of audio."""
    from parley.appliance.speech.tts import Synthesizer
    from parley.core.codecs import float32_to_pcm16

    out_path = Path(out_path)
    synthesizer = Synthesizer(voice.path, num_threads=num_threads, deterministic=True)
    rate = sample_rate or synthesizer.sample_rate
    samples = synthesizer.speak(text, rate)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(float32_to_pcm16(samples).tobytes())
    return out_path, len(samples) / rate
