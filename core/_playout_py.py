"""Playout: the agent's audio queued and paced out one frame at a time, with what was heard.

Samples are float32 at the call rate. Each utterance (an agent turn, pushed sentence by
sentence) keeps its pushed, played and dropped counts, so after a barge-in the agent's message
can be cut to what the caller actually heard. This plain-Python module is also the compiled
playout: ``_playout_c.py`` is a symlink to it and ``_playout_c.pxd`` gives it C types.
"""

from array import array

from parley.core.buffers import lazy_zeros

MAX_UTTERANCES = 32
"""Utterances whose counts are kept: far more than a turn's worth of context needs."""
FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32: a sample outside +-this is NaN or infinite."""


class Playout:
    """A ring of agent samples in utterance order; ``next_frame_into`` takes one frame out."""

    def __init__(self, sample_rate, frame_ms=20, max_buffer_s=120):
        if sample_rate <= 0 or frame_ms <= 0 or sample_rate * frame_ms % 1000:
            raise ValueError(
                f"a {frame_ms} ms frame at {sample_rate} Hz is not a whole number of samples: "
                "use the call rate (8000 or 16000 Hz) and 10, 20 or 30 ms frames")
        if max_buffer_s <= 0:
            raise ValueError(f"max_buffer_s must be more than 0 s, not {max_buffer_s}")
        self.frame_samples = sample_rate * frame_ms // 1000
        self.capacity = sample_rate * max_buffer_s
        self.queued_samples = 0
        self.current_utterance_id = -1
        self.samples_repaired = 0
        self.reference = array("f", bytes(4 * self.frame_samples))
        self._ring = lazy_zeros(self.capacity, "f")
        self._read = 0
        self._ids = array("q", bytes(8 * MAX_UTTERANCES))
        self._pushed = array("q", bytes(8 * MAX_UTTERANCES))
        self._played = array("q", bytes(8 * MAX_UTTERANCES))
        self._dropped = array("q", bytes(8 * MAX_UTTERANCES))
        self._first = 0
        self._count = 0

    def push(self, samples, utterance_id):
        """Queue ``samples`` (float32, 1-D) as the continuation of utterance ``utterance_id``.

        A new id starts a new utterance after those queued; an older one than the newest is a
        bug in the caller. NaN or infinite samples are played as silence and counted in
        ``samples_repaired``. When the samples do not fit, nothing is queued and OverflowError
        says so: push again once more has played.
        """
        if utterance_id < 0:
            raise ValueError(f"utterance ids are 0 or more, not {utterance_id}")
        n = samples.shape[0]
        if self.queued_samples + n > self.capacity:
            raise OverflowError(
                f"playout holds {self.capacity} samples and {self.queued_samples} are queued: "
                f"{n} more do not fit; push this once more has played, or raise max_buffer_s")
        newest = (self._first + self._count - 1) % MAX_UTTERANCES
        if self._count == 0 or self._ids[newest] != utterance_id:
            if self._find(utterance_id) >= 0:
                raise ValueError(
                    f"utterance {utterance_id} is already followed by {self._ids[newest]}: "
                    "push an utterance's samples before the next one's")
            newest = self._open_slot(utterance_id)
        write = (self._read + self.queued_samples) % self.capacity
        for i in range(n):
            x = samples[i]
            if not -FLOAT32_MAX <= x <= FLOAT32_MAX:
                x = 0.0
                self.samples_repaired += 1
            self._ring[write] = x
            write += 1
            if write == self.capacity:
                write = 0
        self.queued_samples += n
        self._pushed[newest] += n

    def next_frame_into(self, out):
        """Write the next frame into ``out`` (and ``reference``), silence where nothing is queued.

        Returns True when the frame carries agent audio. ``current_utterance_id`` is the
        utterance of the frame's last agent sample, or -1 for a silent frame.
        """
        if out.shape[0] != self.frame_samples:
            raise ValueError(
                f"out holds {out.shape[0]} samples, a frame is {self.frame_samples}: "
                "pass a buffer of one frame at the call rate")
        available = self.queued_samples if self.queued_samples < self.frame_samples else self.frame_samples
        read = self._read
        for i in range(available):
            out[i] = self._ring[read]
            self.reference[i] = self._ring[read]
            read += 1
            if read == self.capacity:
                read = 0
        for i in range(available, self.frame_samples):
            out[i] = 0.0
            self.reference[i] = 0.0
        self._read = read
        self.queued_samples -= available
        self.current_utterance_id = -1
        remaining = available
        while remaining > 0:
            slot = self._playing_slot()
            left = self._pushed[slot] - self._played[slot] - self._dropped[slot]
            taken = left if left < remaining else remaining
            self._played[slot] += taken
            remaining -= taken
            self.current_utterance_id = self._ids[slot]
        return available > 0

    def flush(self):
        """Drop everything queued (the caller barged in); return how many samples were dropped."""
        dropped = self.queued_samples
        for k in range(self._count):
            slot = (self._first + k) % MAX_UTTERANCES
            self._dropped[slot] += self._pushed[slot] - self._played[slot] - self._dropped[slot]
        self._read = (self._read + dropped) % self.capacity
        self.queued_samples = 0
        return dropped

    def played_samples(self, utterance_id):
        """Samples of ``utterance_id`` the caller heard: where to cut the agent's message."""
        slot = self._find(utterance_id)
        if slot < 0:
            raise KeyError(
                f"utterance {utterance_id} was never pushed or is older than the last {MAX_UTTERANCES}")
        return self._played[slot]

    def dropped_samples(self, utterance_id):
        """Samples of ``utterance_id`` flushed unheard."""
        slot = self._find(utterance_id)
        if slot < 0:
            raise KeyError(
                f"utterance {utterance_id} was never pushed or is older than the last {MAX_UTTERANCES}")
        return self._dropped[slot]

    def _find(self, utterance_id):
        for k in range(self._count):
            slot = (self._first + k) % MAX_UTTERANCES
            if self._ids[slot] == utterance_id:
                return slot
        return -1

    def _open_slot(self, utterance_id):
        if self._count == MAX_UTTERANCES:
            oldest = self._first
            if self._pushed[oldest] != self._played[oldest] + self._dropped[oldest]:
                raise OverflowError(
                    f"{MAX_UTTERANCES} utterances are queued at once: push fewer, longer utterances")
            self._first = (self._first + 1) % MAX_UTTERANCES
            self._count -= 1
        slot = (self._first + self._count) % MAX_UTTERANCES
        self._ids[slot] = utterance_id
        self._pushed[slot] = 0
        self._played[slot] = 0
        self._dropped[slot] = 0
        self._count += 1
        return slot

    def _playing_slot(self):
        """The oldest utterance with samples still queued."""
        for k in range(self._count):
            slot = (self._first + k) % MAX_UTTERANCES
            if self._pushed[slot] != self._played[slot] + self._dropped[slot]:
                return slot
        return -1
