"""Arbitrary audio chunks -> fixed frames with exact sample positions: a ring buffer.

This plain-Python module is also the compiled framer: ``_framing_c.py`` is a symlink to it and
``_framing_c.pxd`` gives it C types (Cython's pure-Python mode), so twin and compiled framer
cannot drift apart. Chunks come from sockets, sound cards, files and codecs in whatever sizes
they like; VAD and endpointing want 10, 20 or 30 ms frames on a fixed grid, each with the stream
position of its first sample so every event downstream has an exact timestamp.
"""

import numpy as np

SAMPLE_RATES = (8000, 16000)
FRAME_MS = (10, 20, 30)
DEFAULT_CAPACITY_MS = 1000
"""About a second of audio (rounded down to whole frames): a loop that stops popping for longer
loses the oldest frames, not memory."""

FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32: anything above it in magnitude is infinite."""


class Framer:
    """Push chunks (float32 or PCM16) of any size; pop fixed frames of float32 in [-1, 1).

    Frames sit on a grid from stream sample 0: frame n covers samples ``[n * frame_size,
    (n + 1) * frame_size)``. When the ring is full the oldest whole frame is dropped (counted in
    ``dropped_frames``), so latency stays bounded, the grid stays intact and
    ``next_frame_position`` still says where the next frame starts. NaN and +-inf samples become
    0 (counted in ``nonfinite_samples``) so one bad sample cannot poison a filter downstream.
    """

    def __init__(self, sample_rate, frame_ms=20, capacity_ms=DEFAULT_CAPACITY_MS):
        if sample_rate not in SAMPLE_RATES or frame_ms not in FRAME_MS:
            raise ValueError(
                f"cannot cut {frame_ms!r} ms frames at {sample_rate!r} Hz: use a call rate {SAMPLE_RATES} "
                f"and a frame length in ms {FRAME_MS} (resample other rates first)")
        if capacity_ms < frame_ms:
            raise ValueError(f"capacity_ms={capacity_ms!r} must hold at least one {frame_ms} ms frame")
        self.sample_rate = sample_rate
        self.frame_size = sample_rate * frame_ms // 1000
        self.capacity = capacity_ms // frame_ms * self.frame_size
        self._ring = np.zeros(self.capacity, np.float32)
        self.reset()

    def reset(self):
        """Empty the ring and start a new stream at sample 0."""
        self.buffered = 0
        self.next_frame_position = 0
        self.dropped_frames = 0
        self.nonfinite_samples = 0
        self._read = 0
        self._write = 0

    @property
    def frames_ready(self):
        """Whole frames waiting to be popped."""
        return self.buffered // self.frame_size

    def push(self, samples):
        """Append float32 samples (a 1-D float32 buffer of any length, empty included)."""
        for i in range(samples.shape[0]):
            v = samples[i]
            if v != v or abs(v) > FLOAT32_MAX:
                v = 0.0
                self.nonfinite_samples += 1
            self._store(v)

    def push_pcm16(self, pcm):
        """Append PCM16 samples (a 1-D int16 buffer of any length), scaled to [-1, 1)."""
        for i in range(pcm.shape[0]):
            self._store(pcm[i] / 32768.0)

    def _store(self, v):
        if self.buffered == self.capacity:
            self._read += self.frame_size
            if self._read == self.capacity:
                self._read = 0
            self.buffered -= self.frame_size
            self.next_frame_position += self.frame_size
            self.dropped_frames += 1
        self._ring[self._write] = v
        self._write += 1
        if self._write == self.capacity:
            self._write = 0
        self.buffered += 1

    def pop_into(self, out):
        """Copy the next frame into ``out`` (float32, at least ``frame_size``); False if none is ready."""
        if out.shape[0] < self.frame_size:
            raise ValueError(f"output buffer holds {out.shape[0]} samples, a frame is {self.frame_size}")
        if self.buffered < self.frame_size:
            return False
        out[: self.frame_size] = self._ring[self._read : self._read + self.frame_size]
        self._read += self.frame_size
        if self._read == self.capacity:
            self._read = 0
        self.buffered -= self.frame_size
        self.next_frame_position += self.frame_size
        return True
