"""RTP jitter buffer: packets in any order at any time in, one frame per playout tick out.

This plain-Python module is also the compiled jitter buffer: ``_jitter_c.py`` is a symlink to it
and ``_jitter_c.pxd`` gives it C types (Cython's pure-Python mode), so twin and compiled buffer
cannot drift apart. It is sans-I/O: the RTP session hands over each decoded packet with its
arrival time, the playout clock calls ``pop_into`` once per frame period.

How it plays:

* Packets are slotted by extended sequence number (16-bit wrap unrolled as in RFC 3550 A.1) into
  preallocated slots; duplicates are dropped, and so is a packet whose turn has passed (``late``).
* Playout starts once more than ``depth`` frames span the buffer, so an in-order stream leaves
  with a fixed delay of ``depth`` frames.
* A missing frame with later ones already here is lost: the last good frame is repeated once,
  then faded linearly to silence over ``fade_frames``, then silence. When nothing at all is
  buffered (a stall, silence suppression, the end of the call) the same concealment plays but
  playout waits, and restarts ``depth`` frames deep when packets come back.
* ``depth`` adapts: it follows three times the RFC 3550 interarrival jitter (A.8, in integer
  arithmetic), rounded up to whole frames and kept within the settings; it grows at once and
  shrinks one frame after ``shrink_after_frames`` calm frames. When the buffer has held more than
  ``depth`` frames for ``EXCESS_FRAMES_TO_SKIP`` frames in a row, one frame is skipped, so the
  delay follows the depth down.
* Sequence numbers far outside the window (a sender restart, a corrupt header) are strays and
  dropped; two in a row that follow each other resynchronize the buffer to the new numbering.

Every division below is of non-negative integers, so the compiled (C) and interpreted (Python)
arithmetic agree exactly.
"""

import numpy as np

NORMAL = 0
CONCEALED = 1
SILENCE = 2

SEQ_MASK = 0xFFFF
TIMESTAMP_MASK = 0xFFFFFFFF

JITTER_MULTIPLE = 3
"""Depth in units of measured jitter: covers lateness out to roughly 2.5 standard deviations."""
EXCESS_FRAMES_TO_SKIP = 50
"""Frames (1 s at 20 ms) the buffer must stay deeper than ``depth`` before a frame is skipped."""
MAX_MISORDER = 100
"""A packet at most this far behind the playout point is late; further behind it is a stray."""
MIN_SLOTS = 64
"""Slots kept whatever the depth, so a burst after a stall still fits."""
MAX_ARRIVAL_GAP_NS = 60_000_000_000
"""Arrival gaps are clipped to a minute, so a bad clock cannot overflow the jitter arithmetic."""


class JitterBuffer:
    """Reorders, de-duplicates and conceals one RTP stream of fixed-size PCM16 frames.

    Statistics since the last ``reset``, as attributes: ``received`` (well-formed packets put),
    of which ``duplicates``, ``late`` and ``strays`` were dropped; ``malformed`` (wrong payload
    size, dropped); ``lost`` (sequence numbers playout passed without their packet);
    ``concealed`` (repeat and fade frames played); ``underruns`` (times nothing was buffered);
    ``skipped`` (frames dropped to bring the delay down); ``resyncs``; ``depth`` (frames of delay
    aimed at) and ``jitter`` (samples).
    """

    def __init__(self, settings, frame_samples, clock_rate):
        if frame_samples <= 0 or clock_rate <= 0:
            raise ValueError(
                f"frame_samples={frame_samples!r} and clock_rate={clock_rate!r} must be positive: "
                "pass the codec's samples per packet (160 for 20 ms of G.711) and its RTP clock rate")
        self.frame_samples = frame_samples
        self.clock_rate = clock_rate
        self.min_depth = settings.min_depth_frames
        self.max_depth = settings.max_depth_frames
        self.fade_frames = settings.fade_frames
        self.shrink_after_frames = settings.shrink_after_frames
        self._n_slots = max(MIN_SLOTS, 4 * (self.max_depth + 1))
        self._slots = np.zeros((self._n_slots, frame_samples), np.int16)
        self._slot_seq = np.full(self._n_slots, -1, np.int64)
        self._last = np.zeros(frame_samples, np.int16)
        self._fade_gain = np.arange(self.fade_frames * frame_samples - 1, -1, -1, dtype=np.int32)
        self.reset()

    def reset(self):
        """Forget the stream (a new SSRC): empty slots, zero statistics, depth back to the minimum."""
        self._slot_seq[:] = -1
        self.depth = self.min_depth
        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.strays = 0
        self.malformed = 0
        self.lost = 0
        self.concealed = 0
        self.underruns = 0
        self.skipped = 0
        self.resyncs = 0
        self._jitter16 = 0
        self._have_stream = False
        self._have_transit = False
        self._have_last = False
        self._playing = False
        self._highest = 0
        self._next_play = -1
        self._last_arrival_ns = 0
        self._last_timestamp = 0
        self._wanted = self.min_depth
        self._calm_run = 0
        self._excess_run = 0
        self._conceal_run = 0
        self._probation_seq = -1

    @property
    def jitter(self):
        """Interarrival jitter estimate (RFC 3550), in samples of the RTP clock."""
        return self._jitter16 / 16.0

    def put(self, seq, timestamp, payload, arrival_ns):
        """Hand over one decoded packet; returns whether it was kept for playout.

        ``seq`` and ``timestamp`` are the RTP header fields (taken modulo 2**16 and 2**32),
        ``payload`` the decoded int16 frame, ``arrival_ns`` when it came off the wire.
        """
        if payload.shape[0] != self.frame_samples:
            self.malformed += 1
            return False
        self.received += 1
        seq &= SEQ_MASK
        timestamp &= TIMESTAMP_MASK
        if not self._have_stream:
            self._have_stream = True
            self._highest = seq + SEQ_MASK + 1
        delta = (seq - self._highest) & SEQ_MASK
        if delta > SEQ_MASK // 2:
            delta -= SEQ_MASK + 1
        ext = self._highest + delta
        start = self._window_start()
        if ext >= start + self._n_slots or ext < start - MAX_MISORDER:
            return self._stray(seq, timestamp, payload, arrival_ns)
        slot = ext % self._n_slots
        if self._slot_seq[slot] == ext:
            self.duplicates += 1
            return False
        self._measure_jitter(timestamp, arrival_ns)
        if ext < start:
            self.late += 1
            return False
        self._store(slot, ext, payload)
        return True

    def _window_start(self):
        if self._next_play >= 0:
            return self._next_play
        return self._highest - self._n_slots // 2

    def _store(self, slot, ext, payload):
        self._slots[slot] = payload
        self._slot_seq[slot] = ext
        if ext > self._highest:
            self._highest = ext

    def _stray(self, seq, timestamp, payload, arrival_ns):
        if seq != self._probation_seq:
            self._probation_seq = (seq + 1) & SEQ_MASK
            self.strays += 1
            return False
        self.resyncs += 1
        self._slot_seq[:] = -1
        self._playing = False
        self._next_play = -1
        self._have_transit = False
        self._probation_seq = -1
        self._highest = seq + SEQ_MASK + 1
        self._measure_jitter(timestamp, arrival_ns)
        self._store(self._highest % self._n_slots, self._highest, payload)
        return True

    def _measure_jitter(self, timestamp, arrival_ns):
        if self._have_transit:
            gap_ns = arrival_ns - self._last_arrival_ns
            if gap_ns < 0:
                gap_ns = 0
            elif gap_ns > MAX_ARRIVAL_GAP_NS:
                gap_ns = MAX_ARRIVAL_GAP_NS
            sent = (timestamp - self._last_timestamp) & TIMESTAMP_MASK
            if sent > TIMESTAMP_MASK // 2:
                sent -= TIMESTAMP_MASK + 1
            d = gap_ns * self.clock_rate // 1_000_000_000 - sent
            if d < 0:
                d = -d
            self._jitter16 += d - ((self._jitter16 + 8) >> 4)
            per_frame = 16 * self.frame_samples
            wanted = (JITTER_MULTIPLE * self._jitter16 + per_frame - 1) // per_frame
            self._wanted = min(max(wanted, self.min_depth), self.max_depth)
            if self._wanted > self.depth:
                self.depth = self._wanted
                self._calm_run = 0
        self._have_transit = True
        self._last_arrival_ns = arrival_ns
        self._last_timestamp = timestamp

    def pop_into(self, out):
        """Write the next frame into ``out`` (int16, at least ``frame_samples``); return its kind.

        Call once per frame period. The kind is ``NORMAL`` (the packet's own audio),
        ``CONCEALED`` (a repeat or fade of the last good frame) or ``SILENCE``.
        """
        if out.shape[0] < self.frame_samples:
            raise ValueError(f"output buffer holds {out.shape[0]} samples, a frame is {self.frame_samples}")
        if not self._playing and not self._start_playing():
            return self._conceal(out)
        level = self._highest - self._next_play + 1
        if level <= 0:
            self.underruns += 1
            self._playing = False
            return self._conceal(out)
        ext = self._next_play
        slot = ext % self._n_slots
        self._next_play = ext + 1
        self._adapt(level - 1)
        if self._slot_seq[slot] != ext:
            self.lost += 1
            return self._conceal(out)
        out[: self.frame_samples] = self._slots[slot]
        self._last[:] = self._slots[slot]
        self._have_last = True
        self._conceal_run = 0
        return NORMAL

    def _start_playing(self):
        if not self._have_stream:
            return False
        first = self._window_start()
        while first <= self._highest and self._slot_seq[first % self._n_slots] != first:
            first += 1
        if self._highest - first + 1 <= self.depth:
            return False
        if self._next_play >= 0:
            self.lost += first - self._next_play
        self._next_play = first
        self._playing = True
        return True

    def _adapt(self, level):
        if self._wanted < self.depth:
            self._calm_run += 1
            if self._calm_run >= self.shrink_after_frames:
                self.depth -= 1
                self._calm_run = 0
        else:
            self._calm_run = 0
        if level > self.depth:
            self._excess_run += 1
            if self._excess_run >= EXCESS_FRAMES_TO_SKIP:
                self._next_play += 1
                self.skipped += 1
                self._excess_run = 0
        else:
            self._excess_run = 0

    def _conceal(self, out):
        if self._conceal_run <= self.fade_frames + 1:
            self._conceal_run += 1
        if not self._have_last or self._conceal_run > self.fade_frames + 1:
            out[: self.frame_samples] = 0
            return SILENCE
        self.concealed += 1
        if self._conceal_run == 1:
            out[: self.frame_samples] = self._last
            return CONCEALED
        total = self.fade_frames * self.frame_samples
        done = (self._conceal_run - 2) * self.frame_samples
        for j in range(self.frame_samples):
            v = self._last[j] * self._fade_gain[done + j]
            if v >= 0:
                out[j] = v // total
            else:
                out[j] = -(-v // total)
        return CONCEALED
