"""One call's real-time loop: telephone audio in, turn-taking events out, the agent's voice back.

Sans-I/O, like every part it ties together: the media adapter hands in RTP payloads (or PCM from
the file and local channels), calls ``next_frame()`` once per frame period, sends what it
returns, and drains ``next_event()``. Every buffer is allocated once; per frame the loop only
routes them through the compiled parts (codec, jitter buffer or framer, resampler, VAD,
endpointer, barge-in detector, playout).

The loop itself is compiled too (``_call_loop_c``, the pure-mode twin ``_call_loop_py`` typed by
``_call_loop_c.pxd``), so a frame passes between the parts in C; ``PARLEY_NO_EXTENSIONS=1`` runs
the plain-Python twin with the parts' twins.

Sample positions in events count line-rate samples from the call's first frame. VAD and the
audio kept for STT run at 16 kHz: an 8 kHz line is resampled, which delays that copy by the
resampler's group delay (under 1 ms); turn boundaries stay frame-exact on the line's clock.
"""

from dataclasses import dataclass, field

from parley.core import _call_loop_py
from parley.core._implementation import choose
from parley.core.bargein import BargeInSettings
from parley.core.endpointer import EndpointerSettings
from parley.core.jitter import JitterSettings
from parley.core.vad import VadSettings

_impl, COMPILED = choose("_call_loop_c", "_call_loop_py")

ANALYSIS_RATE = _call_loop_py.ANALYSIS_RATE
"""Rate of the VAD and of the audio kept for STT and the acoustic end-of-turn model."""
ACOUSTIC_WINDOW_S = _call_loop_py.ACOUSTIC_WINDOW_S
"""Seconds of the turn the acoustic model hears (Smart Turn v3.2 reads the last 8 s)."""
CODECS = _call_loop_py.CODECS


class CallLoopConfigError(ValueError):
    """The loop was set up with something it cannot run; the message says what to change."""


@dataclass(frozen=True)
class CallLoopSettings:
    """How one call's loop runs; the turn-taking parts can be overridden per agent."""

    line_rate: int = 8000
    """The call's sample rate on the wire: 8000 for G.711, 16000 for wideband PCM."""
    codec: str = "pcmu"
    """Payload format: ``pcmu`` (G.711 mu-law), ``pcma`` (A-law) or ``l16`` (PCM16, file and local channels)."""
    frame_ms: int = 20
    """One tick of the loop; RTP packetizes G.711 at 20 ms."""
    turn_audio_s: int = 60
    """Seconds of caller audio kept at 16 kHz for STT: longer than the longest turn."""
    endpointer: EndpointerSettings = field(default_factory=EndpointerSettings)
    barge_in: BargeInSettings = field(default_factory=BargeInSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    jitter: JitterSettings = field(default_factory=JitterSettings)

    def __post_init__(self):
        if self.line_rate not in (8000, 16000):
            raise CallLoopConfigError(f"line_rate must be 8000 or 16000 Hz, not {self.line_rate!r}")
        if self.codec not in CODECS:
            raise CallLoopConfigError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.codec != "l16" and self.line_rate != 8000:
            raise CallLoopConfigError(f"G.711 ({self.codec}) runs at 8000 Hz, not {self.line_rate}")
        if self.frame_ms not in (10, 20, 30):
            raise CallLoopConfigError(f"frame_ms must be 10, 20 or 30, not {self.frame_ms!r}")
        if self.turn_audio_s * 1000 <= self.endpointer.max_turn_ms:
            raise CallLoopConfigError(
                f"turn_audio_s ({self.turn_audio_s}) must hold a whole turn: more than "
                f"max_turn_ms ({self.endpointer.max_turn_ms} ms)")


@dataclass(frozen=True)
class SpeechStarted:
    sample: int
    """Start of the turn's first speech frame."""
    stt_from_sample: int
    """Where the audio for STT begins: the speech start less the pre-roll."""


@dataclass(frozen=True)
class TurnPaused:
    sample: int
    """The caller has been silent for ``short_silence_ms``; the acoustic model is asked now."""


@dataclass(frozen=True)
class TurnEnded:
    sample: int
    """When the loop decided the turn was over (end of the deciding frame)."""
    speech_end_sample: int
    """End of the turn's last speech frame: voice-to-voice latency counts from here."""
    reason: str
    """``silence`` (the hangover ran out), ``acoustic`` (the end-of-turn model said complete)
    or ``max_turn`` (the turn hit ``max_turn_ms`` and was cut)."""
    transcript: str | None = None
    """What the caller said, when the acoustic stage's transcriber already heard it (``acoustic``
    only): the turn need not be transcribed again."""


@dataclass(frozen=True)
class BargeIn:
    sample: int
    """End of the frame in which the barge-in was declared and playout flushed."""
    onset_sample: int
    """Where the caller's speech over the agent began: take STT audio from here."""
    utterance_id: int
    """The agent utterance that was cut."""
    played_samples: int
    """Samples of it the caller heard: cut the agent's message in the context to these."""


CallLoop = _impl.CallLoop
"""Per-call turn-taking and playout: ``CallLoop(silero, settings=None, acoustic_stage=None,
call_key=None)``. ``feed_rtp(seq, timestamp, payload, arrival_ns)`` or ``feed_pcm(samples)`` in,
``next_frame()`` once per tick (the frame to send), ``next_event()`` until None, ``play(samples,
sample_rate, utterance_id)``, ``turn_audio(from_sample, to_sample=None)`` and
``played_samples(utterance_id)``; ``vad``, ``endpointer``, ``barge_in`` and ``playout`` are its parts."""
