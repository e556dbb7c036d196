"""One call's real-time loop: telephone audio in, turn-taking events out, the agent's voice back.

Sans-I/O, like every part it ties together: the media adapter hands in RTP payloads (or PCM from
the file and local channels), calls ``next_frame()`` once per frame period, sends what it
returns, and drains ``next_event()``. Every buffer is allocated here once; per frame the loop
only routes them through the compiled parts (codec, jitter buffer or framer, resampler, VAD,
endpointer, barge-in detector, playout).

Sample positions in events count line-rate samples from the call's first frame. VAD and the
audio kept for STT run at 16 kHz: an 8 kHz line is resampled, which delays that copy by the
resampler's group delay (under 1 ms); turn boundaries stay frame-exact on the line's clock.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from parley.core import codecs
from parley.core.bargein import BargeInDetector, BargeInSettings
from parley.core.endpointer import EndpointEvent, Endpointer, EndpointerSettings, EndpointerState
from parley.core.framing import Framer
from parley.core.jitter import JitterBuffer, JitterSettings
from parley.core.playout import Playout
from parley.core.resample import StreamResampler
from parley.core.vad import TwoStageVad, VadSettings

ANALYSIS_RATE = 16_000
"""Rate of the VAD and of the audio kept for STT and the acoustic end-of-turn model."""
ACOUSTIC_WINDOW_S = 8
"""Seconds of the turn the acoustic model hears (Smart Turn v3.2 reads the last 8 s)."""
CODECS = ("pcmu", "pcma", "l16")


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


class CallLoop:
    """Per-call turn-taking and playout; ``feed_rtp``/``feed_pcm`` in, ``next_frame`` per tick."""

    def __init__(self, silero, settings=None, acoustic_stage=None, call_key=None):
        self.settings = settings = settings or CallLoopSettings()
        rate = settings.line_rate
        self.frame_samples = n = rate * settings.frame_ms // 1000
        self.analysis_samples = ANALYSIS_RATE * settings.frame_ms // 1000
        self.call_key = call_key if call_key is not None else id(self)
        self._acoustic = acoustic_stage
        self._acoustic_pending = False

        self._jitter = JitterBuffer(settings.jitter, n, rate)
        self._framer = Framer(rate, settings.frame_ms)
        self._source = None
        self._upsampler = StreamResampler(rate, ANALYSIS_RATE) if rate != ANALYSIS_RATE else None
        self._voice_resamplers = {}
        self.vad = TwoStageVad(silero, ANALYSIS_RATE, settings.frame_ms, settings.vad)
        self.endpointer = Endpointer(settings.endpointer, rate, settings.frame_ms)
        self.barge_in = BargeInDetector(settings.barge_in, rate, settings.frame_ms)
        self.playout = Playout(rate, settings.frame_ms)
        self._reference = np.frombuffer(self.playout.reference, dtype=np.float32)
        """A view of the frame playout just sent: the barge-in detector's echo reference."""

        self._packet_pcm = np.zeros(n, np.int16)
        self._in_pcm = np.zeros(n, np.int16)
        self._in = np.zeros(n, np.float32)
        self._analysis = np.zeros(self.analysis_samples, np.float32)
        self._out = np.zeros(n, np.float32)
        self._out_pcm = np.zeros(n, np.int16)
        self._out_codes = bytearray(n)
        self._turn_audio = np.zeros(settings.turn_audio_s * ANALYSIS_RATE, np.float32)
        self._analysis_written = 0
        self.position = 0
        self.packets_malformed = 0
        """Packets whose payload is not one frame of the codec: dropped, the loop goes on."""
        self._events = deque()

    def feed_rtp(self, seq, timestamp, payload, arrival_ns):
        """Hand over one RTP packet's payload; returns whether the jitter buffer kept it."""
        self._choose_source("rtp")
        if len(payload) != self.frame_samples * (2 if self.settings.codec == "l16" else 1):
            self.packets_malformed += 1
            return False
        if self.settings.codec == "pcmu":
            codecs.ulaw_decode_into(payload, self._packet_pcm)
        elif self.settings.codec == "pcma":
            codecs.alaw_decode_into(payload, self._packet_pcm)
        else:
            self._packet_pcm[:] = np.frombuffer(payload, "<i2")
        return self._jitter.put(seq, timestamp, self._packet_pcm, arrival_ns)

    def feed_pcm(self, samples):
        """Hand over caller audio at the line rate (float32, any length) from a file or local channel."""
        self._choose_source("pcm")
        self._framer.push(np.ascontiguousarray(samples, dtype=np.float32))

    def play(self, samples, sample_rate, utterance_id):
        """Queue agent audio (float32 at ``sample_rate``, e.g. the voice's 22,050 Hz) for playout."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if sample_rate != self.settings.line_rate:
            resampler = self._voice_resamplers.get(sample_rate)
            if resampler is None:
                resampler = self._voice_resamplers[sample_rate] = StreamResampler(sample_rate, self.settings.line_rate)
            samples = resampler.process(samples)
        self.playout.push(samples, utterance_id)

    def next_frame(self):
        """Run one tick; return the frame to send (codec bytes, or float32 for ``l16``).

        With PCM input the tick runs only once a whole frame has been fed: otherwise None.
        The returned buffer is reused by the next tick: send or copy it first.
        """
        if not self._take_input():
            return None
        start = self.position
        self.position += self.frame_samples
        self._analyse(start)

        agent_audio = self.playout.next_frame_into(self._out)
        self.barge_in.agent_speaking = agent_audio
        barged = agent_audio and self.barge_in.feed(self._in, self._reference, start)
        if barged:
            self._barge_in()
        # While the agent talks, what the mic hears is echo until the detector says otherwise.
        self._turn_taking(start, self._speech and (barged or not agent_audio))
        return self._encode_out()

    def next_event(self):
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def turn_audio(self, from_sample, to_sample=None):
        """The caller's audio at 16 kHz between two line-rate sample positions (a copy, for STT)."""
        scale = ANALYSIS_RATE // self.settings.line_rate
        end = self._analysis_written if to_sample is None else min(to_sample * scale, self._analysis_written)
        begin = max(from_sample * scale, self._analysis_written - self._turn_audio.shape[0], 0)
        if end <= begin:
            return np.zeros(0, np.float32)
        size = self._turn_audio.shape[0]
        return np.take(self._turn_audio, np.arange(begin, end) % size)

    def played_samples(self, utterance_id):
        """Line-rate samples of an agent utterance the caller has heard so far."""
        return self.playout.played_samples(utterance_id)

    def _choose_source(self, source):
        if self._source is None:
            self._source = source
        elif self._source != source:
            raise CallLoopConfigError(f"this call is fed by {self._source}; feeding {source} as well would mix two streams")

    def _take_input(self):
        if self._source == "pcm":
            return self._framer.pop_into(self._in)
        self._jitter.pop_into(self._in_pcm)
        codecs.pcm16_to_float32_into(self._in_pcm, self._in)
        return True

    def _analyse(self, start):
        if self._upsampler is None:
            self._analysis[:] = self._in
        else:
            self._upsampler.process_into(self._in, self._analysis)
        size = self._turn_audio.shape[0]
        at = self._analysis_written % size
        self._turn_audio[at:at + self.analysis_samples] = self._analysis[: size - at]
        if at + self.analysis_samples > size:
            self._turn_audio[: at + self.analysis_samples - size] = self._analysis[size - at:]
        self._analysis_written += self.analysis_samples
        self._speech = self.vad.process(self._analysis)

    def _barge_in(self):
        utterance = self.playout.current_utterance_id
        self.playout.flush()
        self._out[:] = 0.0
        self._events.append(BargeIn(self.barge_in.event_sample, self.barge_in.barge_in_sample, utterance,
                                    self.playout.played_samples(utterance)))

    def _turn_taking(self, start, heard):
        event = self.endpointer.feed(heard, start)
        if event != EndpointEvent.NO_EVENT:
            self._endpoint_event(event)
        elif self._acoustic_pending:
            self._follow_acoustic_stage()

    def _endpoint_event(self, event):
        ep = self.endpointer
        if event == EndpointEvent.SPEECH_START:
            self._events.append(SpeechStarted(ep.event_sample, ep.stt_start_sample))
        elif event == EndpointEvent.SHORT_SILENCE:
            self._events.append(TurnPaused(ep.event_sample))
            if self._acoustic is not None:
                tail = self.turn_audio(max(0, ep.event_sample - ACOUSTIC_WINDOW_S * self.settings.line_rate))
                self._acoustic.request(self.call_key, tail, ep.event_sample)
                self._acoustic_pending = True
        else:
            self._cancel_acoustic()
            reason = "max_turn" if event == EndpointEvent.MAX_TURN_REACHED else "silence"
            self._events.append(TurnEnded(ep.event_sample, ep.speech_end_sample, reason))

    def _follow_acoustic_stage(self):
        if self.endpointer.state != EndpointerState.TRAILING_SILENCE:
            self._cancel_acoustic()
            return
        verdict = self._acoustic.poll(self.call_key)
        if verdict is None:
            return
        self._acoustic_pending = False
        if verdict.complete and self.endpointer.end_turn_now(verdict.sample) == EndpointEvent.END_OF_TURN:
            ep = self.endpointer
            self._events.append(TurnEnded(ep.event_sample, ep.speech_end_sample, "acoustic"))

    def _cancel_acoustic(self):
        if self._acoustic_pending:
            self._acoustic.cancel(self.call_key)
            self._acoustic_pending = False

    def _encode_out(self):
        if self.settings.codec == "l16":
            return self._out
        codecs.float32_to_pcm16_into(self._out, self._out_pcm)
        encode = codecs.ulaw_encode_into if self.settings.codec == "pcmu" else codecs.alaw_encode_into
        encode(self._out_pcm, self._out_codes)
        return self._out_codes
