"""Framing: audio chunks of any size in, fixed 10/20/30 ms frames at 8 or 16 kHz out, each with
the stream position of its first sample.

The compiled framer ``_framing_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_framing_py`` (the same source, interpreted).
``Framer(sample_rate, frame_ms=20, capacity_ms=DEFAULT_CAPACITY_MS)``: ``push(float32)``,
``push_pcm16(int16)``, ``pop_into(out) -> bool``, ``frames_ready``, ``next_frame_position``.
"""


from parley.core import _framing_py
from parley.core._implementation import choose

_impl, COMPILED = choose("_framing_c", "_framing_py")

SAMPLE_RATES = _framing_py.SAMPLE_RATES
FRAME_MS = _framing_py.FRAME_MS
DEFAULT_CAPACITY_MS = _framing_py.DEFAULT_CAPACITY_MS
Framer = _impl.Framer
