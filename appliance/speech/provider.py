"""Which execution provider the sherpa-onnx engines run on, and why: never a silent fallback.

sherpa-onnx bundles its own onnxruntime. Its PyPI wheel is a CPU build, and asked for "cuda" it
logs a line and quietly runs on the CPU; a GPU build ships onnxruntime's CUDA provider library
beside its own. So "cuda" is chosen only when both hold: a GPU is really usable here
(``parley.appliance.accel``) and this sherpa-onnx carries the CUDA provider.
"""

import functools
import os
from dataclasses import dataclass
from pathlib import Path

CUDA_PROVIDER_LIBRARY = "libonnxruntime_providers_cuda.so"
"""What a sherpa-onnx built with ``-DSHERPA_ONNX_ENABLE_GPU=ON`` ships next to its onnxruntime."""

PROVIDER_ENV = "PARLEY_SPEECH_PROVIDER"
"""``cpu`` forces the CPU; unset or ``auto`` decides as above; ``cuda`` insists (an error if unusable)."""


class ProviderUnavailable(RuntimeError):
    """``cuda`` was required but cannot run here; the message says why."""


@dataclass(frozen=True)
class ProviderChoice:
    """The provider handed to sherpa-onnx, with the reason, for logs and ``parley doctor``."""

    provider: str
    """``cpu`` or ``cuda``."""
    reason: str

    def __str__(self):
        return f"{self.provider} ({self.reason})"


@functools.cache
def sherpa_has_cuda():
    """True when the installed sherpa-onnx ships onnxruntime's CUDA provider (a GPU build)."""
    import sherpa_onnx

    package = Path(sherpa_onnx.__file__).parent
    folders = [package / "lib", package, package.parent / "sherpa_onnx.libs"]
    return any((folder / CUDA_PROVIDER_LIBRARY).exists() for folder in folders)


def choose_provider(requested=None):
    """The provider for a sherpa-onnx engine: ``requested`` (or ``$PARLEY_SPEECH_PROVIDER``),
    ``auto`` by default."""
    from parley.appliance import accel

    requested = (requested or os.environ.get(PROVIDER_ENV) or "auto").lower()
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{PROVIDER_ENV}={requested!r}: give auto, cpu or cuda")
    if requested == "cpu":
        return ProviderChoice("cpu", "cpu requested")
    if accel.cuda_device_count() == 0:
        reason = "no CUDA device seen"
    elif not accel.onnx_cuda_usable():
        reason = "a GPU is present but onnxruntime cannot run on it (CUDA/cuDNN libraries?)"
    elif not sherpa_has_cuda():
        reason = ("a GPU is usable but this sherpa-onnx is a CPU build (the PyPI wheel): "
                  "build it with -DSHERPA_ONNX_ENABLE_GPU=ON to run speech on the GPU")
    else:
        return ProviderChoice("cuda", "GPU usable and sherpa-onnx carries the CUDA provider")
    if requested == "cuda":
        raise ProviderUnavailable(f"{PROVIDER_ENV}=cuda but {reason}")
    return ProviderChoice("cpu", reason)
