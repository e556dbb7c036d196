"""The conversions ``convert:`` in the manifest names, each run inside the model's folder."""

from pathlib import Path


def _piper_voice(model_dir):
    from parley.appliance.models.piper_voice import convert_piper_voice

    sources = sorted(Path(model_dir, "piper").glob("*.onnx"))
    if len(sources) != 1:
        raise ValueError(f"expected one Piper .onnx in {model_dir}/piper, found {len(sources)}")
    convert_piper_voice(sources[0], model_dir)


def _whisper_ct2(model_dir):
    from parley.appliance.models.whisper_ct2 import convert_whisper_ct2

    convert_whisper_ct2(Path(model_dir, "ct2"), model_dir, prefix="tiny.en")


CONVERSIONS = {
    "piper-voice": _piper_voice,
    "whisper-ct2": _whisper_ct2,
}
