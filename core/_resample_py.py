"""Streaming polyphase FIR resampling in numpy: the filter design and the plain twin of ``_resample``.

A rate change ``in_rate -> out_rate`` is ``up / down`` in lowest terms: zero-stuff by ``up``, low-pass
at the upsampled rate, keep every ``down``-th sample. Only the kept outputs are computed, each from
one polyphase branch of the prototype filter (``taps[phase + m * up]``).

Filter spec (every supported pair; measured by ``tests/test_resample.py``), with the *lower
Nyquist* ``min(in_rate, out_rate) / 2``:

* passband 0 .. 0.9 x lower Nyquist, gain within +-0.01 dB (3.6 kHz at 8 kHz, 7.2 kHz at 16 kHz:
  the whole telephone band and then some);
* stopband from 1.0 x lower Nyquist up, attenuated by at least 80 dB, so nothing aliases back
  below the new Nyquist and no image of the old band survives an upsampling; at -20 dBFS speech
  that leaves any alias under the 16-bit noise floor;
* a Kaiser-windowed sinc cut at the middle of the transition band; the Kaiser formulas size it
  for 80 dB plus a small margin, and the half length is rounded up to a multiple of ``down`` so
  the group delay is a whole number of output samples (the loop keeps exact sample timestamps
  by subtracting it).

Streaming: the last ``taps_per_phase - 1`` input samples and the phase of the next output are
kept between chunks, so any chunking gives the output of one call, sample for sample.
Non-finite input (NaN, +-inf) is replaced by 0 before filtering: one bad sample becomes one
silent sample instead of poisoning the filter history for the rest of the call.

Each output is a dot product summed in ``LANES`` interleaved float32 accumulators then added
pairwise; the compiled resampler sums in the same order, so the two agree to float32 rounding.
"""

from dataclasses import dataclass
from functools import lru_cache
from math import ceil, gcd

import numpy as np

SUPPORTED_RATES = (8000, 16000, 22050, 24000, 48000)
"""Call rates (8/16 kHz), TTS voice rates (22.05/24 kHz) and studio recordings (48 kHz)."""

PASSBAND_EDGE = 0.9
"""Passband edge as a fraction of the lower Nyquist."""
STOPBAND_EDGE = 1.0
"""Stopband edge as a fraction of the lower Nyquist."""
STOPBAND_ATTENUATION_DB = 80.0
"""Least attenuation anywhere in the stopband."""
PASSBAND_RIPPLE_DB = 0.01
"""Largest gain deviation in the passband (a Kaiser design for 80 dB gives about 0.001 dB)."""
DESIGN_MARGIN_DB = 3.0
"""Kaiser's length and beta formulas are estimates; designing for a little more keeps 80 dB met."""

LANES = 8
"""Interleaved accumulators per dot product; taps per phase are padded to a multiple of this."""
BLOCK = 1024
"""Input samples filtered per pass; bounds the scratch memory whatever the chunk size."""


class UnsupportedRateError(ValueError):
    """A sample rate the resampler has no filter for."""


@dataclass(frozen=True)
class FilterDesign:
    """The prototype low-pass for one rate pair and its polyphase layout."""

    in_rate: int
    out_rate: int
    up: int
    """Interpolation factor L."""
    down: int
    """Decimation factor M."""
    taps: np.ndarray
    """Prototype filter at ``in_rate * up`` (gain ``up``: it also undoes the zero-stuffing), float32."""
    taps_per_phase: int
    """Length K of one polyphase branch, padded to a multiple of ``LANES``."""
    phases: np.ndarray
    """``(up, K)`` float32: row p holds ``taps[p + m * up]`` with m reversed, oldest sample first."""
    group_delay: int
    """Delay of the filter in output samples (a whole number by construction)."""
    passband_edge_hz: float
    stopband_edge_hz: float


def _check_rate(name, rate):
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SUPPORTED_RATES:
        supported = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise UnsupportedRateError(
            f"{name} {rate!r} Hz is not supported: use one of {supported} Hz "
            "(convert other rates to one of these before they reach the call loop)"
        )


def design_filter(in_rate, out_rate):
    """The Kaiser-windowed sinc for ``in_rate -> out_rate``: designed once per rate pair and shared
    (read-only) by every resampler of that pair, never per frame."""
    _check_rate("in_rate", in_rate)
    _check_rate("out_rate", out_rate)
    return _design(in_rate, out_rate)


@lru_cache(maxsize=None)
def _design(in_rate, out_rate):
    common = gcd(in_rate, out_rate)
    up, down = out_rate // common, in_rate // common
    nyquist = min(in_rate, out_rate) / 2
    passband_hz, stopband_hz = PASSBAND_EDGE * nyquist, STOPBAND_EDGE * nyquist
    if up == down:
        taps = np.ones(1)
        half = 0
    else:
        upsampled_rate = in_rate * up
        attenuation = STOPBAND_ATTENUATION_DB + DESIGN_MARGIN_DB
        beta = 0.1102 * (attenuation - 8.7)
        transition = 2 * np.pi * (stopband_hz - passband_hz) / upsampled_rate
        min_half = (attenuation - 7.95) / (2.285 * transition) / 2
        half = ceil(min_half / down) * down
        n = np.arange(2 * half + 1) - half
        cutoff = (passband_hz + stopband_hz) / 2 / upsampled_rate
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(2 * half + 1, beta)
        taps *= up / taps.sum()
    taps_per_phase = ceil(ceil(len(taps) / up) / LANES) * LANES
    padded = np.zeros(taps_per_phase * up)
    padded[: len(taps)] = taps
    phases = np.ascontiguousarray(padded.reshape(taps_per_phase, up).T[:, ::-1], dtype=np.float32)
    taps = taps.astype(np.float32)
    taps.flags.writeable = phases.flags.writeable = False
    return FilterDesign(
        in_rate=in_rate,
        out_rate=out_rate,
        up=up,
        down=down,
        taps=taps,
        taps_per_phase=taps_per_phase,
        phases=phases,
        group_delay=half // down,
        passband_edge_hz=passband_hz,
        stopband_edge_hz=stopband_hz,
    )


def _as_samples(name, samples):
    if not isinstance(samples, np.ndarray) or samples.dtype != np.float32 or samples.ndim != 1:
        raise ValueError(f"{name} must be a 1-D float32 array, got {getattr(samples, 'dtype', type(samples))}")
    if not samples.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous: pass np.ascontiguousarray({name})")
    return samples


class StreamResampler:
    """Resamples one stream chunk by chunk; output depends only on the samples, not the chunking."""

    def __init__(self, in_rate, out_rate):
        design = design_filter(in_rate, out_rate)
        self.design = design
        self.in_rate, self.out_rate = in_rate, out_rate
        self.up, self.down = design.up, design.down
        self.group_delay = design.group_delay
        self.taps_per_phase = design.taps_per_phase
        self._history = np.zeros(design.taps_per_phase - 1, np.float32)
        self.reset()

    def reset(self):
        """Forget the stream: zero history, next output aligned with the next input sample."""
        self._history[:] = 0
        self._next_t = len(self._history) * self.up

    def max_output(self, n_in):
        """Most samples ``process_into`` writes for ``n_in`` input samples, whatever the state."""
        return -(-n_in * self.up // self.down)

    def _output_count(self, n_in):
        end = (len(self._history) + n_in) * self.up
        return max(0, -(-(end - self._next_t) // self.down))

    def process_into(self, src, out):
        """Resample ``src`` into ``out``; returns the number of samples written."""
        src, out = _as_samples("src", src), _as_samples("out", out)
        needed = self._output_count(len(src))
        if len(out) < needed:
            raise ValueError(f"output buffer holds {len(out)} samples, {needed} are due: size it with max_output()")
        written = 0
        for start in range(0, len(src), BLOCK):
            block = src[start : start + BLOCK]
            clean = np.where(np.isfinite(block), block, np.float32(0))
            written += self._emit(clean, out[written:], needed - written)
        return written

    def _emit(self, block, out, limit):
        history = len(self._history)
        x = np.concatenate([self._history, block])
        end = len(x) * self.up
        count = min(limit, max(0, -(-(end - self._next_t) // self.down)))
        t = self._next_t + self.down * np.arange(count)
        newest = t // self.up
        phase = t - newest * self.up
        k = self.taps_per_phase
        windows = x[(newest - k + 1)[None, :] + np.arange(k)[:, None]]
        products = self.design.phases[phase].T * windows
        lanes = products.reshape(k // LANES, LANES, count).sum(axis=0)
        out[:count] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        self._history[:] = x[len(x) - history :]
        self._next_t += count * self.down - len(block) * self.up
        return count

    def process(self, src):
        """Resample any 1-D array of samples (converted to float32); returns a new array."""
        src = np.ascontiguousarray(src, dtype=np.float32).reshape(-1)
        out = np.empty(self.max_output(len(src)), np.float32)
        return out[: self.process_into(src, out)]

    def flush_into(self, out):
        """Drain the delay line into ``out`` (``group_delay`` samples) and reset for a new stream."""
        out = _as_samples("out", out)
        if len(out) < self.group_delay:
            raise ValueError(f"output buffer holds {len(out)} samples, flush writes group_delay={self.group_delay}")
        written = 0
        silence = np.zeros(BLOCK, np.float32)
        while written < self.group_delay:
            written += self._emit(silence, out[written:], self.group_delay - written)
        self.reset()
        return written

    def flush(self):
        """The last ``group_delay`` samples of the stream, as a new array; then reset."""
        out = np.empty(self.group_delay, np.float32)
        self.flush_into(out)
        return out
