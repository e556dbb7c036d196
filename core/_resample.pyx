# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Streaming polyphase FIR resampler, compiled: the per-sample loop of ``_resample_py``.

The filter is designed once per rate pair by ``_resample_py.design_filter`` (numpy), so both
implementations filter with the same taps; the spec, the delay and the NaN policy are documented
there. Here the input is copied block by block behind the kept history in a scratch buffer
allocated at construction, and each output is one polyphase dot product, without the GIL.
"""

from libc.math cimport isfinite
from libc.string cimport memmove

import numpy as np

from parley.core._resample_py import BLOCK, LANES, design_filter

assert LANES == 8, "_dot below unrolls exactly eight accumulators"
cdef Py_ssize_t _BLOCK = BLOCK


cdef inline float _dot(const float* taps, const float* x, Py_ssize_t k) noexcept nogil:
    cdef float acc[8]
    cdef Py_ssize_t m, j
    for j in range(8):
        acc[j] = 0
    for m in range(0, k, 8):
        for j in range(8):
            acc[j] += taps[m + j] * x[m + j]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef class StreamResampler:
    """Resamples one stream chunk by chunk; output depends only on the samples, not the chunking."""

    cdef readonly int in_rate, out_rate, up, down, group_delay, taps_per_phase
    cdef readonly object design
    cdef const float[:, ::1] _phases
    cdef float[::1] _work
    cdef Py_ssize_t _history
    cdef long long _next_t

    def __init__(self, in_rate, out_rate):
        design = design_filter(in_rate, out_rate)
        self.design = design
        self.in_rate, self.out_rate = in_rate, out_rate
        self.up, self.down = design.up, design.down
        self.group_delay = design.group_delay
        self.taps_per_phase = design.taps_per_phase
        self._phases = design.phases
        self._history = design.taps_per_phase - 1
        self._work = np.zeros(self._history + BLOCK, np.float32)
        self.reset()

    def reset(self):
        """Forget the stream: zero history, next output aligned with the next input sample."""
        self._work[:] = 0
        self._next_t = self._history * self.up

    def max_output(self, Py_ssize_t n_in):
        """Most samples ``process_into`` writes for ``n_in`` input samples, whatever the state."""
        return (n_in * self.up + self.down - 1) // self.down

    cdef Py_ssize_t _output_count(self, Py_ssize_t n_in) noexcept nogil:
        cdef long long end = (self._history + n_in) * <long long>self.up
        if end <= self._next_t:
            return 0
        return (end - self._next_t + self.down - 1) // self.down

    cdef Py_ssize_t _emit(self, Py_ssize_t n_block, float* out, Py_ssize_t limit) noexcept nogil:
        """Filter the block sitting behind the history in ``_work``; then keep the new history."""
        cdef Py_ssize_t avail = self._history + n_block, count = 0, k = self.taps_per_phase
        cdef Py_ssize_t newest = self._next_t // self.up, phase = self._next_t % self.up
        cdef Py_ssize_t whole_step = self.down // self.up, phase_step = self.down % self.up
        cdef float* work = &self._work[0]
        while count < limit and newest < avail:
            out[count] = _dot(&self._phases[phase, 0], work + newest - k + 1, k)
            count += 1
            newest += whole_step
            phase += phase_step
            if phase >= self.up:
                phase -= self.up
                newest += 1
        memmove(work, work + n_block, self._history * sizeof(float))
        self._next_t = (newest - n_block) * <long long>self.up + phase
        return count

    def process_into(self, const float[::1] src, float[::1] out):
        """Resample ``src`` into ``out``; returns the number of samples written."""
        cdef Py_ssize_t n_in = src.shape[0], needed = self._output_count(n_in)
        cdef Py_ssize_t written = 0, start = 0, n, i
        cdef float v
        cdef float* work
        if out.shape[0] < needed:
            raise ValueError(f"output buffer holds {out.shape[0]} samples, {needed} are due: size it with max_output()")
        if n_in == 0:
            return 0
        work = &self._work[self._history]
        with nogil:
            while start < n_in:
                n = min(_BLOCK, n_in - start)
                for i in range(n):
                    v = src[start + i]
                    work[i] = v if isfinite(v) else 0
                written += self._emit(n, &out[written], needed - written)
                start += n
        return written

    def process(self, src):
        """Resample any 1-D array of samples (converted to float32); returns a new array."""
        src = np.ascontiguousarray(src, dtype=np.float32).reshape(-1)
        out = np.empty(self.max_output(len(src)), np.float32)
        return out[: self.process_into(src, out)]

    def flush_into(self, float[::1] out):
        """Drain the delay line into ``out`` (``group_delay`` samples) and reset for a new stream."""
        cdef Py_ssize_t written = 0
        if out.shape[0] < self.group_delay:
            raise ValueError(f"output buffer holds {out.shape[0]} samples, flush writes group_delay={self.group_delay}")
        while written < self.group_delay:
            self._work[self._history:] = 0
            written += self._emit(_BLOCK, &out[written], self.group_delay - written)
        self.reset()
        return written

    def flush(self):
        """The last ``group_delay`` samples of the stream, as a new array; then reset."""
        out = np.empty(self.group_delay, np.float32)
        self.flush_into(out)
        return out
