"""Sample-rate conversion for the call loop: 8 k <-> 16 k, TTS voices (22.05 k / 24 k) and 48 k
recordings to the call rate, streaming and sample-exact.

The compiled resampler ``_resample`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its numpy
twin ``_resample_py``. Both filter with the same taps, designed in ``_resample_py`` (the filter
spec is documented there). ``StreamResampler(in_rate, out_rate)`` offers ``process_into(src,
out) -> int`` (float32 in and out, no allocation; size ``out`` with ``max_output(len(src))``),
``process(src)``, ``flush_into(out)`` / ``flush()`` (the last ``group_delay`` samples at the end of
a stream), ``reset()``, and ``group_delay``: output sample n stands for input time
``(n - group_delay) / out_rate``.
"""

from parley.core._implementation import choose
from parley.core._resample_py import (
    PASSBAND_EDGE,
    PASSBAND_RIPPLE_DB,
    STOPBAND_ATTENUATION_DB,
    STOPBAND_EDGE,
    SUPPORTED_RATES,
    FilterDesign,
    UnsupportedRateError,
    design_filter,
)

_impl, COMPILED = choose("_resample", "_resample_py")
StreamResampler = _impl.StreamResampler

__all__ = [
    "COMPILED",
    "PASSBAND_EDGE",
    "PASSBAND_RIPPLE_DB",
    "STOPBAND_ATTENUATION_DB",
    "STOPBAND_EDGE",
    "SUPPORTED_RATES",
    "FilterDesign",
    "StreamResampler",
    "UnsupportedRateError",
    "design_filter",
]
