"""What the evaluation set and the echo set share: where models are, WAV reading, espeak-ng's
identity, and the recipe-keyed cache files both are built into. Offline work, not the frame path."""

import hashlib
import json
import os
import subprocess
import tempfile
import wave
from functools import cache
from pathlib import Path

import numpy as np


def models_dir_or_default(models_dir):
    if models_dir is not None:
        return Path(models_dir)
    from parley.appliance.config import load_settings

    return load_settings().models_dir


def read_wav(path):
    """A 16-bit mono WAV as float32 samples and its rate."""
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768.0, wav.getframerate()


@cache
def espeak_version():
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except FileNotFoundError as exc:
        raise FileNotFoundError("espeak-ng is not installed: run `apt-get install espeak-ng`") from exc


def digest(obj):
    """The cache key of a recipe (any JSON-able value)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def file_identity(path):
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def atomic_save(path, write):
    """Write through a temporary file and rename: concurrent builders never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        write(tmp)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def save_npz(path, arrays, meta):
    """``arrays`` (name -> ndarray) and ``meta`` (any JSON-able value) in one .npz, atomically."""
    everything = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    atomic_save(path, lambda f: np.savez(f, **everything))


def load_npz(path):
    """``(meta, arrays)`` as ``save_npz`` wrote them."""
    with np.load(path) as data:
        return json.loads(data["meta"].tobytes()), {key: data[key] for key in data.files if key != "meta"}
