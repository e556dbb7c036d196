"""The simulated caller of an audio simulation: its words come from the persona LLM, espeak-ng
speaks them into the call, and it takes turns like the scripted demo callers do."""

import threading

import numpy as np

from parley.appliance.media.file_channel import FRAME_MS, speak_with_espeak


class SimulatedCaller:
    """Speaks after the agent has been quiet ``pause_ms``; the next words are written and
    synthesized in a thread, so the call's 20 ms frames never wait for the persona."""

    def __init__(self, next_words, rate, *, max_lines, pause_ms=700, speak=speak_with_espeak, noise_db=-60.0):
        self.next_words = next_words
        """(conversation lines so far) -> the caller's next words."""
        self.rate, self.max_lines, self.pause_ms, self.speak = rate, max_lines, pause_ms, speak
        self.frame = rate * FRAME_MS // 1000
        self.said = []
        self._noise = np.random.default_rng(0)
        self._noise_level = 10 ** (noise_db / 20)
        self._quiet_ms = 0.0
        self._writing = None
        self._ready = None
        self._playing = None
        self._position = 0

    @property
    def done(self):
        return len(self.said) >= self.max_lines and self._playing is None and self._writing is None

    def next_frame(self, session, call_sample):
        frame = (self._noise.standard_normal(self.frame) * self._noise_level).astype(np.float32)
        if self._playing is None and self._writing is None and len(self.said) < self.max_lines:
            self._quiet_ms = 0.0 if session.agent_speaking else self._quiet_ms + FRAME_MS
            if self._quiet_ms >= self.pause_ms and not session.closed.is_set():
                self._writing = threading.Thread(target=self._write, args=(_lines(session),), daemon=True)
                self._writing.start()
        if self._writing is not None and not self._writing.is_alive():
            self._writing, self._playing, self._position = None, self._ready, 0
        if self._playing is not None:
            part = self._playing[self._position:self._position + self.frame]
            frame[:part.shape[0]] += part
            self._position += self.frame
            if self._position >= self._playing.shape[0]:
                self._playing, self._quiet_ms = None, 0.0
        return frame

    def _write(self, lines):
        text = self.next_words(lines)
        self._ready = self.speak(text, self.rate)
        self.said.append(text)


def _lines(session):
    """The conversation so far as the call heard it (the caller's words as STT heard them)."""
    lines = []
    for turn in session.turns:
        if turn.caller_text:
            lines.append(f"caller: {turn.caller_text}")
        said = turn.heard_text if turn.heard_text is not None else turn.agent_text
        if said:
            lines.append(f"agent: {said}")
    return lines
