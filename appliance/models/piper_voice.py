"""A Piper voice made loadable by sherpa-onnx's VITS engine.

sherpa-onnx 2.x reads the voice's facts from ONNX metadata and its phoneme symbols from a
``tokens.txt``; a Piper release carries both in a ``.onnx.json`` instead. Missing metadata makes
sherpa-onnx exit from C++ (not a Python exception), so the conversion checks everything first.
"""

import json
import os
from pathlib import Path

import onnx


class VoiceConversionError(ValueError):
    """The Piper voice files cannot be turned into a sherpa-onnx voice."""


REQUIRED_METADATA = ("model_type", "comment", "language", "n_speakers", "sample_rate")


def voice_metadata(config):
    """The sherpa-onnx metadata for a Piper voice's ``.onnx.json`` content."""
    try:
        sample_rate = int(config["audio"]["sample_rate"])
        language = config["language"]["name_english"]
        voice = config["espeak"]["voice"]
    except (KeyError, TypeError, ValueError) as exc:
        raise VoiceConversionError(f"voice config lacks {exc}: not a Piper .onnx.json") from exc
    return {
        "model_type": "vits",
        "comment": "piper",
        "language": language,
        "voice": voice,
        "has_espeak": "1",
        "n_speakers": str(int(config.get("num_speakers", 1))),
        "sample_rate": str(sample_rate),
    }


def tokens_text(phoneme_id_map):
    """``<symbol> <id>`` lines; each symbol one codepoint, none twice (sherpa-onnx exits otherwise)."""
    lines, seen = [], set()
    for symbol, ids in phoneme_id_map.items():
        if len(symbol) != 1 or symbol in "\n\r":
            raise VoiceConversionError(f"phoneme symbol {symbol!r} is not one printable codepoint")
        if not ids:
            raise VoiceConversionError(f"phoneme symbol {symbol!r} has no id")
        if symbol in seen:
            raise VoiceConversionError(f"phoneme symbol {symbol!r} appears twice")
        seen.add(symbol)
        lines.append(f"{symbol} {int(ids[0])}")
    return "\n".join(lines) + "\n"


def convert_piper_voice(onnx_path, out_dir):
    """Write ``model.onnx`` (with metadata) and ``tokens.txt`` for sherpa-onnx into ``out_dir``."""
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    config_path = onnx_path.with_name(onnx_path.name + ".json")
    for path in (onnx_path, config_path):
        if not path.is_file():
            raise VoiceConversionError(f"{path} not found: a Piper voice is a .onnx with its .onnx.json beside it")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise VoiceConversionError(f"{config_path}: not JSON: {exc}") from exc
    metadata = voice_metadata(config)
    tokens = tokens_text(config.get("phoneme_id_map") or {})
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:
        raise VoiceConversionError(f"{onnx_path}: not a readable ONNX model: {exc}") from exc

    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"model": out_dir / "model.onnx", "tokens": out_dir / "tokens.txt"}
    tmp_model, tmp_tokens = outputs["model"].with_suffix(".onnx.tmp"), outputs["tokens"].with_suffix(".txt.tmp")
    onnx.save(model, str(tmp_model))
    tmp_tokens.write_text(tokens, encoding="utf-8")
    os.replace(tmp_tokens, outputs["tokens"])
    os.replace(tmp_model, outputs["model"])
    return outputs


def check_voice_dir(voice_dir):
    """Raise unless ``voice_dir`` holds a voice sherpa-onnx can load without exiting."""
    voice_dir = Path(voice_dir)
    model_path, tokens_path = voice_dir / "model.onnx", voice_dir / "tokens.txt"
    for path in (model_path, tokens_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `parley models fetch`")
    props = {p.key: p.value for p in onnx.load(str(model_path), load_external_data=False).metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in props]
    if missing or "piper" not in props.get("comment", ""):
        raise VoiceConversionError(f"{model_path}: metadata lacks {missing or ['comment=piper']}: run `parley models fetch`")
    return props


class Voice:
    """A converted Piper voice spoken through sherpa-onnx, with phonemes from piper-tts's
    espeak-ng (sherpa-onnx 2.x no longer phonemizes VITS input itself)."""

    def __init__(self, voice_dir, num_threads=2, deterministic=False, provider="cpu"):
        """``deterministic`` turns VITS's unseeded noise off, so a line is the same on every machine;
        ``provider`` is sherpa-onnx's (``cpu`` or ``cuda``; see ``parley.appliance.speech.provider``)."""
        import piper
        import sherpa_onnx
        from piper.phonemize_espeak import EspeakPhonemizer

        voice_dir = Path(voice_dir)
        props = check_voice_dir(voice_dir)
        self.espeak_voice = props.get("voice", "en-us")
        """The espeak-ng voice that phonemizes for this model (written by the conversion)."""
        noise = {"noise_scale": 0.0, "noise_scale_w": 0.0} if deterministic else {}
        vits = sherpa_onnx.OfflineTtsVitsModelConfig(
            model=str(voice_dir / "model.onnx"), tokens=str(voice_dir / "tokens.txt"), **noise)
        self._tts = sherpa_onnx.OfflineTts(sherpa_onnx.OfflineTtsConfig(
            model=sherpa_onnx.OfflineTtsModelConfig(vits=vits, num_threads=num_threads, provider=provider)))
        self._phonemizer = EspeakPhonemizer(os.path.join(os.path.dirname(piper.__file__), "espeak-ng-data"))
        self._generation = sherpa_onnx.GenerationConfig

    @property
    def sample_rate(self):
        return self._tts.sample_rate

    def speak(self, text, speed=1.0):
        """``text`` as float32 samples at ``sample_rate``; returns ``(samples, sample_rate)``."""
        return self.generate(text, speed)

    def generate(self, text, speed=1.0, on_sentence=None):
        """Like ``speak``, calling ``on_sentence(samples)`` as each sentence espeak-ng finds in
        ``text`` is synthesized; when it returns False, synthesis stops there (a barge-in). Returns
        what was synthesized; text with nothing to say gives no samples."""
        import numpy as np

        sentences = [[ord(c) for c in "".join(s)] for s in self._phonemizer.phonemize(self.espeak_voice, text)]
        sentences = [s for s in sentences if s]
        if not sentences:  # sherpa-onnx refuses empty phonemes
            return np.zeros(0, dtype=np.float32), self.sample_rate
        config = self._generation()
        config.speed = float(speed)
        config.phoneme_codepoints = sentences
        if on_sentence is None:
            audio = self._tts.generate(text, config)
        else:
            audio = self._tts.generate(text, config, lambda samples, progress: 1 if on_sentence(samples) else 0)
        return np.asarray(audio.samples, dtype=np.float32), audio.sample_rate
