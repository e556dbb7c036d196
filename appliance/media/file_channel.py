"""The file channel: a caller made of audio (a WAV file, or scripted lines), the agent's side to WAV.

Frames are paced by the monotonic clock, 20 ms each, exactly as a phone line delivers them, so
every latency in the trace is the one a caller would live through. A scripted caller listens
like a person: it waits for the agent to finish (and a natural pause) before its next line, or
talks over the agent when the script says it interrupts.
"""

import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parley.core.resample import StreamResampler

FRAME_MS = 20


class CallerAudioError(ValueError):
    """Caller audio that cannot be used (unreadable WAV, wrong format); the message says why."""


@dataclass(frozen=True)
class CallerLine:
    text: str
    pause_ms: int = 700
    """Silence after the agent stops talking before this line starts."""
    interrupt_after_ms: int | None = None
    """Start this line while the agent talks, once its reply has played this long."""


def resample(samples, in_rate, out_rate):
    if in_rate == out_rate:
        return samples.astype(np.float32)
    resampler = StreamResampler(in_rate, out_rate)
    out = np.concatenate([resampler.process(samples.astype(np.float32)), resampler.flush()])
    return out[resampler.group_delay:]


def speak_with_espeak(text, rate, *, voice="en-us", words_per_minute=140):
    """``text`` spoken by espeak-ng (a voice unlike the agent's), float32 at ``rate``."""
    if shutil.which("espeak-ng") is None:
        raise CallerAudioError("espeak-ng is not installed: run `make setup` (it installs the Debian package)")
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
                         check=True, capture_output=True).stdout
    # espeak-ng streams its WAV with placeholder sizes: the samples start after the 44-byte header.
    samples = np.frombuffer(wav[44:len(wav) - (len(wav) - 44) % 2], dtype="<i2").astype(np.float32) / 32768.0
    return resample(samples, 22050, rate)


def read_wav(path, rate):
    """A mono or stereo 16-bit WAV as float32 mono at ``rate``."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, in_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise CallerAudioError(f"{path}: not a readable WAV file ({exc})") from None
    if width != 2:
        raise CallerAudioError(f"{path}: {8 * width}-bit samples; give 16-bit PCM (sox in.wav -b 16 out.wav)")
    usable = len(frames) - len(frames) % (2 * channels)
    samples = np.frombuffer(frames[:usable], dtype="<i2").astype(np.float32) / 32768.0
    if samples.size == 0:
        raise CallerAudioError(f"{path}: holds no audio")
    samples = samples.reshape(-1, channels).mean(axis=1)
    try:
        return resample(samples, in_rate, rate)
    except ValueError as exc:
        raise CallerAudioError(f"{path}: {exc}") from None


def write_wav(path, samples, rate, channels=1):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


class ScriptedCaller:
    """Plays caller lines into a call the way a person would take turns."""

    def __init__(self, lines, rate, *, speak=speak_with_espeak, noise_db=-60.0, seed=0):
        self.lines = list(lines)
        self.audio = [speak(line.text, rate) for line in self.lines]
        self.rate = rate
        self.frame = rate * FRAME_MS // 1000
        self._next = 0
        self._playing = None
        self._position = 0
        self._quiet_ms = 0.0
        self._noise = np.random.default_rng(seed)
        self._noise_level = 10 ** (noise_db / 20)
        self.line_started_at = []
        """Sample index of the call at which each line began."""

    @property
    def done(self):
        return self._next >= len(self.lines) and self._playing is None

    def next_frame(self, session, call_sample):
        """The caller's next 20 ms, given what the agent is doing now."""
        frame = (self._noise.standard_normal(self.frame) * self._noise_level).astype(np.float32)
        if self._playing is None and self._next < len(self.lines):
            line = self.lines[self._next]
            speaking = session.agent_speaking
            self._quiet_ms = 0.0 if speaking else self._quiet_ms + FRAME_MS
            if (line.interrupt_after_ms is not None and speaking and session.played_ms() >= line.interrupt_after_ms) or \
                    (line.interrupt_after_ms is None and self._quiet_ms >= line.pause_ms):
                self._playing, self._position = self.audio[self._next], 0
                self.line_started_at.append(call_sample)
                self._next += 1
        if self._playing is not None:
            part = self._playing[self._position:self._position + self.frame]
            frame[:part.shape[0]] += part
            self._position += self.frame
            if self._position >= self._playing.shape[0]:
                self._playing = None
                self._quiet_ms = 0.0
        return frame


class WavCaller:
    """A recorded caller: the WAV plays from the start of the call, then silence."""

    def __init__(self, samples, rate):
        self.samples = samples
        self.frame = rate * FRAME_MS // 1000
        self._position = 0

    @property
    def done(self):
        return self._position >= self.samples.shape[0]

    def next_frame(self, session, call_sample):
        frame = np.zeros(self.frame, np.float32)
        part = self.samples[self._position:self._position + self.frame]
        frame[:part.shape[0]] = part
        self._position += self.frame
        return frame


@dataclass
class CallAudio:
    caller: np.ndarray
    agent: np.ndarray
    rate: int

    def write(self, folder, name):
        """``<name>-agent.wav`` (what the agent said, as the line carried it) and
        ``<name>-conversation.wav`` (stereo: caller left, agent right)."""
        agent = write_wav(Path(folder) / f"{name}-agent.wav", self.agent, self.rate)
        both = np.stack([self.caller, self.agent], axis=1).reshape(-1)
        conversation = write_wav(Path(folder) / f"{name}-conversation.wav", both, self.rate, channels=2)
        return agent, conversation


def run_call(session, caller, *, realtime=True, max_seconds=240.0, idle_end_s=6.0):
    """Drive ``session`` with ``caller`` frame by frame until the call ends; the audio of both sides.

    The call ends when the session closes and its last words have played, when the caller is
    done and the agent has stayed quiet for ``idle_end_s``, or after ``max_seconds``.
    """
    rate = session.line_rate
    frame_samples = rate * FRAME_MS // 1000
    caller_frames, agent_frames = [], []
    session.start()
    started = time.monotonic()
    quiet_since = None
    sample = 0
    for tick in range(int(max_seconds * 1000 / FRAME_MS)):
        if realtime:
            delay = started + tick * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame = caller.next_frame(session, sample)
        session.feed_pcm(frame)
        out = session.next_frame()
        caller_frames.append(frame)
        agent_frames.append(np.array(out, dtype=np.float32) if out is not None else np.zeros(frame_samples, np.float32))
        sample += frame_samples
        if session.closed.is_set() and not session.agent_speaking:
            break
        if caller.done and not session.agent_speaking:
            quiet_since = quiet_since if quiet_since is not None else time.monotonic()
            if time.monotonic() - quiet_since > idle_end_s:
                break
        else:
            quiet_since = None
    session.close()
    return CallAudio(np.concatenate(caller_frames), np.concatenate(agent_frames), rate)
