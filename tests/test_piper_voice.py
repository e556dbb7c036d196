import json
from pathlib import Path

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.models.piper_voice import (
    Voice,
    VoiceConversionError,
    check_voice_dir,
    convert_piper_voice,
    tokens_text,
)

VOICE = "voice-en_US-joe-medium"


def synthesize(voice_dir, text):
    return Voice(voice_dir).speak(text)


def test_tokens_are_one_codepoint_each_with_the_space_as_a_bare_id():
    assert tokens_text({"_": [0], " ": [3], "ə": [59]}) == "_ 0\n  3\nə 59\n"


@pytest.mark.parametrize("symbol", ["ab", "\n"])
def test_a_symbol_sherpa_onnx_cannot_read_is_refused(symbol):
    with pytest.raises(VoiceConversionError, match="not one printable codepoint"):
        tokens_text({symbol: [1]})


def test_a_voice_without_its_json_is_refused(tmp_path):
    (tmp_path / "v.onnx").write_bytes(b"")
    with pytest.raises(VoiceConversionError, match="v.onnx.json not found"):
        convert_piper_voice(tmp_path / "v.onnx", tmp_path / "out")


def test_a_json_that_is_not_a_piper_config_is_refused(tmp_path):
    (tmp_path / "v.onnx").write_bytes(b"")
    (tmp_path / "v.onnx.json").write_text(json.dumps({"audio": {}}))
    with pytest.raises(VoiceConversionError, match="not a Piper .onnx.json"):
        convert_piper_voice(tmp_path / "v.onnx", tmp_path / "out")


@pytest.mark.models
def test_conversion_gives_sherpa_onnx_the_metadata_it_requires(models_dir, tmp_path):
    source = fetched(models_dir, VOICE, "piper", "en_US-joe-medium.onnx")
    outputs = convert_piper_voice(source, tmp_path)
    props = check_voice_dir(tmp_path)
    assert props["sample_rate"] == "22050" and props["n_speakers"] == "1" and "piper" in props["comment"]
    assert len(outputs["tokens"].read_text().splitlines()) == 151


@pytest.mark.models
def test_the_converted_voice_speaks(models_dir):
    voice = fetched(models_dir, VOICE, "model.onnx").parent
    samples, rate = synthesize(voice, "Thank you for calling Acme. How can I help you today?")
    assert rate == 22050
    seconds = len(samples) / rate
    assert 2.0 < seconds < 6.0
    frames = samples[: len(samples) // 441 * 441].reshape(-1, 441)
    voiced = np.sqrt((frames ** 2).mean(axis=1)) > 0.02
    assert voiced.mean() > 0.4, "most 20 ms frames of a spoken sentence carry speech energy"


@pytest.mark.models
def test_whisper_hears_what_the_voice_says(models_dir):
    """The converted voice and the converted Whisper, checked against each other."""
    import sherpa_onnx

    voice = fetched(models_dir, VOICE, "model.onnx").parent
    stt = fetched(models_dir, "whisper-tiny.en", "tiny.en-encoder.onnx").parent
    samples, rate = synthesize(voice, "Please refund my order number four two seven.")
    recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(stt / "tiny.en-encoder.onnx"), decoder=str(stt / "tiny.en-decoder.onnx"),
        tokens=str(stt / "tiny.en-tokens.txt"), num_threads=2)
    stream = recognizer.create_stream()
    stream.accept_waveform(rate, samples)
    recognizer.decode_stream(stream)
    heard = stream.result.text.lower()
    assert "refund" in heard and "order" in heard
