"""Framing: audio chunks of any size in, fixed 10/20/30 ms frames at 8 or 16 kHz out, each with
the stream position of its first sample.

The compiled framer ``_framing_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_framing_py`` (the same source, interpreted).
``Framer(sample_rate, frame_ms=20, capacity_ms=DEFAULT_CAPACITY_MS)``: ``push(float32)``,
``push_pcm16(int16)``, ``pop_into(out) -> bool``, ``frames_ready``, ``next_frame_position``.
"""

import importlib.machinery
import os

from parley.core import _framing_py

if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
    _impl = _framing_py
    COMPILED = False
else:
    from parley.core import _framing_c as _impl

    if not _impl.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        # The .py source sits beside the extension: never run it by accident (aiohttp's lesson).
        raise ImportError("parley.core._framing_c is not compiled: run `python setup.py build_ext --inplace`, "
                          "or set PARLEY_NO_EXTENSIONS=1 for the plain-Python twin")
    COMPILED = True

SAMPLE_RATES = _framing_py.SAMPLE_RATES
FRAME_MS = _framing_py.FRAME_MS
DEFAULT_CAPACITY_MS = _framing_py.DEFAULT_CAPACITY_MS
Framer = _impl.Framer
