"""Sample handling the speech engines share: checked float32 input and sample-aligned resampling."""

import numpy as np

from parley.core.resample import SUPPORTED_RATES, StreamResampler, UnsupportedRateError


class InvalidAudio(ValueError):
    """Samples an engine cannot take (not 1-D, or NaN/inf); a bug in the caller, not in the audio."""


def as_samples(samples):
    """``samples`` as a 1-D float32 array, refusing what no engine can make sense of."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise InvalidAudio(f"expected mono samples (a 1-D array), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidAudio(f"expected float32 samples in [-1, 1], got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise InvalidAudio(f"{bad} of {len(array)} samples are NaN or infinite: fix the source of the audio")
    return array


def check_rate(sample_rate):
    """Raise ``UnsupportedRateError`` unless the resampler has a filter for ``sample_rate``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate not in SUPPORTED_RATES:
        raise UnsupportedRateError(
            f"sample rate {sample_rate!r} Hz is not supported: use one of {', '.join(map(str, SUPPORTED_RATES))} Hz")
    return sample_rate


class AlignedResampler:
    """A ``StreamResampler`` without its filter delay: output sample n is input time n / out_rate,
    and a whole stream gives ``ceil(n_in * out_rate / in_rate)`` samples once ``flush()`` ran."""

    def __init__(self, in_rate, out_rate):
        self._resampler = None if in_rate == out_rate else StreamResampler(check_rate(in_rate), check_rate(out_rate))
        self._skip = 0 if self._resampler is None else self._resampler.group_delay

    def process(self, samples):
        if self._resampler is None:
            return samples
        out = self._resampler.process(samples)
        skipped = min(self._skip, len(out))
        self._skip -= skipped
        return out[skipped:]

    def flush(self):
        if self._resampler is None:
            return np.zeros(0, np.float32)
        tail = self._resampler.flush()
        skipped = min(self._skip, len(tail))
        self._skip = self._resampler.group_delay
        return tail[skipped:]


def resample(samples, in_rate, out_rate):
    """A whole clip at ``out_rate``, aligned sample for sample with the input."""
    resampler = AlignedResampler(in_rate, out_rate)
    if in_rate == out_rate:
        return samples
    return np.concatenate([resampler.process(samples), resampler.flush()])
