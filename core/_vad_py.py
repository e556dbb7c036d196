"""Stage (a) of voice activity detection: a cheap per-frame detector with an adaptive noise floor.

Each frame is split into a low band (150-900 Hz, where voiced speech is strongest) and a high
band (900-4000 Hz, fricatives and formants), and each band's energy is compared with that band's
own noise floor, tracked by minimum statistics (the lowest frame energy over the last ~1.6 s).
Speech lifts at least one band well above its floor; stationary noise does not. The detector says
``SPEECH`` or ``SILENCE`` only when the margin is clear, and ``UNSURE`` near the threshold, where
stage (b), Silero, is asked instead. How near depends on the line: each band's speech peak
(tracked while the line is active, held through silence, assumed at a typical level before the
caller has spoken) over its floor gives the line's speech-to-noise ratio. On a noisy line, where
weak speech hides in the noise, only frames right at the floor count as clear silence; on a
clear line, a sound far below the line's speech (a breath, a click, a door) is not clear speech.

``TwoStageVad`` puts Silero (stage b) behind it: its per-frame bookkeeping (the window ring Silero
reads, the policy that combines the two stages) lives here too, so a compiled caller (the call
loop) runs a whole frame in C and leaves C only for the frames Silero must score.

This plain-Python module is also the source of the compiled ``_vad_c`` (Cython pure mode, typed
by ``_vad_c.pxd``): the two cannot drift apart.
"""

import math

import numpy as np
from cython.cimports.libc.math import exp, log10

SILENCE = 0
"""Decision: no speech in this frame (clearly at the noise floor, or below the silence level)."""
SPEECH = 1
"""Decision: speech in this frame (clearly above the noise floor, or within the hangover)."""
UNSURE = 2
"""Decision: too close to the threshold to say; ask stage (b)."""
# C copies for the compiled per-frame path (``_vad_c.pxd`` types them; Python globals cost a lookup).
_SILENCE, _SPEECH, _UNSURE = SILENCE, SPEECH, UNSURE
FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32: a sample outside +-this is NaN or infinite."""

SAMPLE_RATES = (8000, 16000)
FRAME_MS = (10, 20, 30)
_LOW_HZ = 150.0
_SPLIT_HZ = 900.0
_HIGH_HZ = 4000.0
_FLOOR_SUBWINDOWS = 8
_MIN_DB = -100.0


class NoiseFloorVad:
    """One call's stage-(a) detector; feed it every frame, in order, with ``process``.

    ``score`` (0..1) and ``decision`` describe the last frame; ``holding`` is true when that
    decision is SPEECH only because of the hangover. ``noise_floor_db`` (the low band's floor)
    and ``line_snr_db`` are there for logs and tests.
    """

    def __init__(self, sample_rate=16000, frame_ms=20, settings=None):
        from parley.core.vad import VadConfigError, VadSettings

        settings = settings or VadSettings()
        if sample_rate not in SAMPLE_RATES:
            raise VadConfigError(f"the VAD runs at 8000 or 16000 Hz, not {sample_rate}: resample the line first")
        if frame_ms not in FRAME_MS:
            raise VadConfigError(f"the VAD takes 10, 20 or 30 ms frames, not {frame_ms} ms")
        if not settings.noisy_silence_margin_db <= settings.silence_margin_db < settings.speech_margin_db:
            raise VadConfigError(f"need noisy_silence_margin_db ({settings.noisy_silence_margin_db}) <= "
                                 f"silence_margin_db ({settings.silence_margin_db}) < speech_margin_db "
                                 f"({settings.speech_margin_db})")
        if settings.noisy_line_db >= settings.clear_line_db:
            raise VadConfigError(f"noisy_line_db ({settings.noisy_line_db}) must be below "
                                 f"clear_line_db ({settings.clear_line_db})")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_size = sample_rate * frame_ms // 1000
        self.speech_margin_db = settings.speech_margin_db
        self.silence_margin_db = settings.silence_margin_db
        self.noisy_silence_margin_db = settings.noisy_silence_margin_db
        self.clear_line_db = settings.clear_line_db
        self.noisy_line_db = settings.noisy_line_db
        self.silence_dbfs = settings.silence_dbfs
        self.peak_decay_db = settings.peak_decay_db_per_s * frame_ms / 1000.0
        self.speech_below_peak_db = settings.speech_below_peak_db
        self.expected_peak_dbfs = settings.expected_peak_dbfs
        self.hangover_frames = max(0, int(round(settings.hangover_ms / frame_ms)))
        self.warmup_frames = max(1, int(round(settings.warmup_ms / frame_ms)))
        self.subwindow_frames = max(1, int(round(settings.floor_window_ms / _FLOOR_SUBWINDOWS / frame_ms)))
        self._hp_coef = 1.0 / (1.0 + 2.0 * math.pi * _LOW_HZ / sample_rate)
        self._split_coef = 1.0 - math.exp(-2.0 * math.pi * _SPLIT_HZ / sample_rate)
        self._top_coef = 1.0 - math.exp(-2.0 * math.pi * min(_HIGH_HZ, 0.45 * sample_rate) / sample_rate)
        self.reset()

    def reset(self):
        """Forget the line: a new call starts with no noise floor."""
        self.score = 0.0
        self.decision = SILENCE
        self.holding = False
        self.noise_floor_db = _MIN_DB
        self.line_snr_db = 0.0
        self.frames = 0
        self._x_prev = 0.0
        self._hp = 0.0
        self._lp1 = 0.0
        self._lp2 = 0.0
        self._top = 0.0
        self._hangover_left = 0
        self._subwindow_pos = 0
        self._subwindow_index = 0
        self._low_min = 1e300
        self._high_min = 1e300
        self._history = np.full((2, _FLOOR_SUBWINDOWS), 1e300)
        self._low_peak = self.expected_peak_dbfs
        self._high_peak = self.expected_peak_dbfs

    def process(self, frame):
        """Decide on one frame of float32 samples in [-1, 1); returns the decision.

        Any length is taken (an empty frame changes nothing); a frame holding NaN or inf is
        silence and leaves the filters and the noise floor untouched.
        """
        n = frame.shape[0]
        if n == 0:
            return self.decision
        hp_coef = self._hp_coef
        split = self._split_coef
        top_coef = self._top_coef
        x_prev = self._x_prev
        hp = self._hp
        lp1 = self._lp1
        lp2 = self._lp2
        top = self._top
        broad = 0.0
        low = 0.0
        high = 0.0
        check = 0.0
        for i in range(n):
            x = float(frame[i])
            check += x * 0.0
            hp = hp_coef * (hp + x - x_prev)
            x_prev = x
            lp1 += split * (hp - lp1)
            lp2 += split * (lp1 - lp2)
            top += top_coef * ((hp - lp1) - top)
            broad += hp * hp
            low += lp2 * lp2
            high += top * top
        if check != 0.0:
            # A NaN or inf sample: the filters ran on copies, so the state stays as it was.
            return self._decide(_SILENCE, 0.0)
        self._x_prev = x_prev
        self._hp = hp
        self._lp1 = lp1
        self._lp2 = lp2
        self._top = top
        level_db = _db(broad / n)
        low_db = _db(low / n)
        high_db = _db(high / n)
        self._track_floor(low_db, high_db)
        low_floor = min(self._low_min, self._history_min(0))
        high_floor = min(self._high_min, self._history_min(1))
        self.noise_floor_db = low_floor
        margin = max(low_db - low_floor, high_db - high_floor)
        if margin > self.silence_margin_db:
            self._low_peak = max(low_db, self._low_peak - self.peak_decay_db)
            self._high_peak = max(high_db, self._high_peak - self.peak_decay_db)
        line_snr = max(self._low_peak - low_floor, self._high_peak - high_floor)
        self.line_snr_db = line_snr
        clear = min(1.0, max(0.0, (line_snr - self.noisy_line_db) / (self.clear_line_db - self.noisy_line_db)))
        silence_margin = self.noisy_silence_margin_db + clear * (self.silence_margin_db - self.noisy_silence_margin_db)
        self.frames += 1
        middle = 0.5 * (self.speech_margin_db + self.silence_margin_db)
        slope = 0.25 * (self.speech_margin_db - self.silence_margin_db)
        score = 1.0 / (1.0 + exp(-(margin - middle) / slope))
        if level_db < self.silence_dbfs:
            return self._decide(_SILENCE, 0.0)
        if self.frames <= self.warmup_frames:
            return self._decide(_UNSURE, score)
        below_peak = min(self._low_peak - low_db, self._high_peak - high_db)
        if margin >= self.speech_margin_db and below_peak <= self.speech_below_peak_db:
            return self._decide(_SPEECH, score)
        if margin <= silence_margin:
            return self._decide(_SILENCE, score)
        return self._decide(_UNSURE, score)

    def _decide(self, raw, score):
        self.score = score
        self.holding = False
        if raw == _SPEECH:
            self._hangover_left = self.hangover_frames
            self.decision = _SPEECH
        elif self._hangover_left > 0:
            self._hangover_left -= 1
            self.holding = True
            self.decision = _SPEECH
        else:
            self.decision = raw
        return self.decision

    def _track_floor(self, low_db, high_db):
        """Minimum statistics: the floor is the lowest frame energy over the last
        ``_FLOOR_SUBWINDOWS`` sub-windows, so it drops at once and rises after a window."""
        self._low_min = min(self._low_min, low_db)
        self._high_min = min(self._high_min, high_db)
        self._subwindow_pos += 1
        if self._subwindow_pos >= self.subwindow_frames:
            self._history[0, self._subwindow_index] = self._low_min
            self._history[1, self._subwindow_index] = self._high_min
            self._subwindow_index = (self._subwindow_index + 1) % _FLOOR_SUBWINDOWS
            self._subwindow_pos = 0
            self._low_min = 1e300
            self._high_min = 1e300

    def _history_min(self, band):
        lowest = self._history[band, 0]
        for k in range(1, _FLOOR_SUBWINDOWS):
            lowest = min(lowest, self._history[band, k])
        return lowest


def _db(power):
    return max(_MIN_DB, 10.0 * log10(power + 1e-12))


class TwoStageVad:
    """One call's VAD: stage (a) on every frame, Silero on the frames (a) is unsure of.

    ``process(frame)`` returns the decision (also in ``speech``); ``silero_prob`` is Silero's
    latest probability (0 until it has been asked); ``frames``, ``frames_confirmed`` (frames on
    which Silero ran) and ``windows_scored`` count its share of the work.

    Policy: a clear stage-(a) answer (SPEECH or SILENCE) stands. An UNSURE frame, and a SPEECH
    frame held only by stage (a)'s hangover (the end of speech, where energy misleads most),
    takes Silero's latest probability with Silero's own hysteresis: speech starts at
    ``silero_speech`` and, once started, holds until the probability drops below
    ``silero_silence``. Silero scores the call's audio in its fixed 32 ms windows, only on the
    frames that need it (every frame with ``confirm="always"``): each such frame has Silero
    score the windows completed since it last ran, at most the last ``silero_catch_up`` + 1.
    """

    def __init__(self, silero, sample_rate=16000, frame_ms=20, settings=None):
        from parley.core.vad import VadSettings

        settings = settings or VadSettings()
        self.settings = settings
        self.stage_a = NoiseFloorVad(sample_rate, frame_ms, settings)
        self.silero = silero
        self.stream = silero.new_stream(sample_rate)
        self.window_size = self.stream.window_size
        self._always = settings.confirm == "always"
        self._catch_up = settings.silero_catch_up
        self._silero_speech = settings.silero_speech
        self._silero_silence = settings.silero_silence
        # A ring of the last windows (the one filling, and the catch-up behind it); windows are
        # counted from the call's start, ``_scored`` of them handed to Silero so far. ``_rows``
        # holds each slot as an array once, so handing a window to Silero allocates nothing.
        windows = np.zeros((self._catch_up + 2, self.window_size), dtype=np.float32)
        self._windows = windows
        self._rows = [windows[k] for k in range(windows.shape[0])]
        self._slots = windows.shape[0]
        self._filled = 0
        self._completed = 0
        self._scored = 0
        self._first_pending = 0
        self.speech = False
        self.silero_prob = 0.0
        self.frames = 0
        self.frames_confirmed = 0
        self.windows_scored = 0

    def process(self, frame):
        """Decide on one frame (float32 samples); True when it is speech."""
        return self.process_frame(np.ascontiguousarray(frame, dtype=np.float32))

    def process_frame(self, frame):
        """``process`` for a contiguous float32 buffer, as the call loop holds its frames."""
        count = self._prepare_frame(frame)
        for k in range(count):
            self.silero_prob = self.silero.score(self.stream, self._rows[(self._first_pending + k) % self._slots])
        return self._finish()

    def _prepare(self, frame):
        """Stage (a) and the window bookkeeping; returns the windows Silero must score, in order."""
        count = self._prepare_frame(np.ascontiguousarray(frame, dtype=np.float32))
        return [self._rows[(self._first_pending + k) % self._slots] for k in range(count)]

    def _prepare_frame(self, samples):
        """Stage (a) and the window bookkeeping; returns how many windows Silero must score,
        from ``_first_pending`` on."""
        self.stage_a.process(samples)
        self._buffer(samples)
        if samples.shape[0] == 0:
            return 0
        self.frames += 1
        if not (self._always or self._needs_silero()):
            return 0
        first = max(self._scored, self._completed - (self._catch_up + 1))
        self._first_pending = first
        self._scored = self._completed
        if self._completed > first:
            self.frames_confirmed += 1
            self.windows_scored += self._completed - first
        return self._completed - first

    def _needs_silero(self):
        return self.stage_a.decision == _UNSURE or self.stage_a.holding

    def _finish(self):
        if self._needs_silero():
            threshold = self._silero_silence if self.speech else self._silero_speech
            self.speech = self.silero_prob >= threshold
        else:
            self.speech = self.stage_a.decision == _SPEECH
        return self.speech

    def _buffer(self, samples):
        """Append the frame to the window ring; NaN and inf become 0 (Silero would be poisoned)."""
        taken = 0
        while taken < samples.shape[0]:
            slot = self._completed % self._slots
            count = min(self.window_size - self._filled, samples.shape[0] - taken)
            for i in range(count):
                x = samples[taken + i]
                self._windows[slot, self._filled + i] = x if -FLOAT32_MAX <= x <= FLOAT32_MAX else 0.0
            self._filled += count
            taken += count
            if self._filled == self.window_size:
                self._filled = 0
                self._completed += 1
