"""The endpointer: one speech decision per frame in, turn events with frame-exact samples out.

This plain-Python module is also the compiled endpointer: ``_endpointer_c.py`` is a symlink to
it and ``_endpointer_c.pxd`` gives it C types (Cython's pure-Python mode), so the twin and the
compiled state machine cannot drift apart. Time is the sample position the caller passes in.
"""

NO_EVENT = 0
SPEECH_START = 1
SHORT_SILENCE = 2
END_OF_TURN = 3
MAX_TURN_REACHED = 4

IDLE = 0
MAYBE_SPEECH = 1
SPEECH = 2
TRAILING_SILENCE = 3


class Endpointer:
    """Idle -> maybe-speech -> speech <-> trailing-silence -> idle, fed once per frame.

    ``feed`` returns an event code (``NO_EVENT`` most frames) and leaves the event's sample in
    ``event_sample``, so the compiled per-frame path allocates nothing. Silences and runs are
    measured in samples between frame positions, so a lost frame counts as the time it covered.
    """

    def __init__(self, settings, sample_rate, frame_ms=20):
        if sample_rate <= 0 or frame_ms <= 0 or sample_rate * frame_ms % 1000:
            raise ValueError(
                f"a {frame_ms} ms frame at {sample_rate} Hz is not a whole number of samples: "
                "use the call rate (8000 or 16000 Hz) and 10, 20 or 30 ms frames")
        self.frame_samples = sample_rate * frame_ms // 1000
        self.min_speech_samples = settings.min_speech_ms * sample_rate // 1000
        self.hangover_samples = settings.hangover_ms * sample_rate // 1000
        self.short_silence_samples = settings.short_silence_ms * sample_rate // 1000
        self.max_turn_samples = settings.max_turn_ms * sample_rate // 1000
        self.pre_roll_samples = settings.pre_roll_ms * sample_rate // 1000
        self.state = IDLE
        self.position = 0
        self.event_sample = 0
        self.speech_start_sample = 0
        self.speech_end_sample = 0
        self.stt_start_sample = 0
        self.frames_out_of_order = 0
        self._candidate_start = 0
        self._short_silence_sent = False

    def feed(self, is_speech, frame_start_sample):
        """Take the decision for the frame starting at ``frame_start_sample``; return an event code.

        A frame that starts before the end of the previous one (a replayed or reordered packet)
        is counted in ``frames_out_of_order`` and ignored: the turn goes on as if it never came.
        """
        if frame_start_sample < self.position:
            self.frames_out_of_order += 1
            return NO_EVENT
        frame_end = frame_start_sample + self.frame_samples
        self.position = frame_end
        if self.state == IDLE:
            if not is_speech:
                return NO_EVENT
            self._candidate_start = frame_start_sample
            self.state = MAYBE_SPEECH
            return self._confirm_speech(frame_end)
        if self.state == MAYBE_SPEECH:
            if is_speech:
                return self._confirm_speech(frame_end)
            self.state = IDLE
            return NO_EVENT
        silence = 0
        if is_speech:
            self.state = SPEECH
            self.speech_end_sample = frame_end
            self._short_silence_sent = False
        else:
            self.state = TRAILING_SILENCE
            silence = frame_end - self.speech_end_sample
        if silence >= self.hangover_samples:
            return self._end_turn(END_OF_TURN, frame_end)
        if frame_end - self.speech_start_sample >= self.max_turn_samples:
            return self._end_turn(MAX_TURN_REACHED, frame_end)
        if silence >= self.short_silence_samples and not self._short_silence_sent:
            self._short_silence_sent = True
            self.event_sample = frame_end
            return SHORT_SILENCE
        return NO_EVENT

    def feed_frames(self, is_speech, first_frame_sample, event_codes, event_samples):
        """Feed consecutive frames' decisions (one byte each, non-zero = speech); return the event count.

        Event ``k`` lands in ``event_codes[k]`` and ``event_samples[k]``; each buffer must hold one
        entry per frame. This is how compiled callers (the call loop, the evaluation) drive the
        endpointer without a Python call per frame.
        """
        n_frames = is_speech.shape[0]
        if event_codes.shape[0] < n_frames or event_samples.shape[0] < n_frames:
            raise ValueError(
                f"event buffers hold {min(event_codes.shape[0], event_samples.shape[0])} entries, "
                f"{n_frames} frames may give as many events: allocate one entry per frame")
        n_events = 0
        for i in range(n_frames):
            code = self.feed(is_speech[i] != 0, first_frame_sample + i * self.frame_samples)
            if code != NO_EVENT:
                event_codes[n_events] = code
                event_samples[n_events] = self.event_sample
                n_events += 1
        return n_events

    def end_turn_now(self, scored_until_sample):
        """End the turn on an outside verdict (the acoustic end-of-turn model said "complete").

        The verdict holds only if the caller is still silent and said nothing after the audio the
        model scored (up to ``scored_until_sample``); otherwise it is stale and ``NO_EVENT`` comes
        back. On ``END_OF_TURN`` the event sample is the end of the last frame fed: the decision
        cannot be acted on before the audio it was taken in.
        """
        if self.state != TRAILING_SILENCE or self.speech_end_sample > scored_until_sample:
            return NO_EVENT
        return self._end_turn(END_OF_TURN, self.position)

    def _confirm_speech(self, frame_end):
        if frame_end - self._candidate_start < self.min_speech_samples:
            return NO_EVENT
        self.state = SPEECH
        self.speech_start_sample = self._candidate_start
        self.speech_end_sample = frame_end
        self.stt_start_sample = max(self._candidate_start - self.pre_roll_samples, 0)
        self._short_silence_sent = False
        self.event_sample = self._candidate_start
        return SPEECH_START

    def _end_turn(self, event, sample):
        self.state = IDLE
        self.event_sample = sample
        return event
