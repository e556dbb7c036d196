"""One call's loop, frame by frame: the parts routed through buffers allocated once.

This plain-Python module is also the compiled loop: ``_call_loop_c.py`` is a symlink to it and
``_call_loop_c.pxd`` gives it C types (Cython's pure-Python mode), so the twin and the compiled
loop cannot drift apart. Compiled, it holds the compiled parts as C types and calls them
directly (jitter buffer or framer, VAD, endpointer, barge-in detector, playout); the codec and
the resampler are hand-written ``.pyx`` byte loops, called through Python with the arrays. The
twin holds the parts' plain-Python twins. Only Silero, the acoustic end-of-turn stage and the
events (a few per turn) are Python objects, and they run only when a frame needs them.

``parley.core.call_loop`` is the face: settings, events and what the positions mean are there.
"""

from collections import deque

import cython
import numpy as np

from parley.core import _endpointer_py
from parley.core.buffers import lazy_zeros

if cython.compiled:
    from parley.core import _bargein_c as _bargein
    from parley.core import _endpointer_c as _endpointer
    from parley.core import _framing_c as _framing
    from parley.core import _g711 as _codec
    from parley.core import _jitter_c as _jitter
    from parley.core import _playout_c as _playout
    from parley.core import _resample as _resampling
    from parley.core import _vad_c as _vad
else:
    from parley.core import _bargein_py as _bargein
    from parley.core import _endpointer_py as _endpointer
    from parley.core import _framing_py as _framing
    from parley.core import _g711_py as _codec
    from parley.core import _jitter_py as _jitter
    from parley.core import _playout_py as _playout
    from parley.core import _resample_py as _resampling
    from parley.core import _vad_py as _vad

ANALYSIS_RATE = 16_000
"""Rate of the VAD and of the audio kept for STT and the acoustic end-of-turn model."""
ACOUSTIC_WINDOW_S = 8
"""Seconds of the turn the acoustic model hears (Smart Turn v3.2 reads the last 8 s)."""
CODECS = ("pcmu", "pcma", "l16")

# C copies of the endpointer's codes (read from its twin, so they cannot drift) and of the
# loop's own, for the compiled per-frame path: Python globals cost a lookup.
_NO_EVENT = _endpointer_py.NO_EVENT
_SPEECH_START = _endpointer_py.SPEECH_START
_SHORT_SILENCE = _endpointer_py.SHORT_SILENCE
_END_OF_TURN = _endpointer_py.END_OF_TURN
_MAX_TURN_REACHED = _endpointer_py.MAX_TURN_REACHED
_TRAILING_SILENCE = _endpointer_py.TRAILING_SILENCE
_PCMU, _PCMA, _L16 = 0, 1, 2
_NO_SOURCE, _RTP, _PCM = 0, 1, 2
_SOURCE_NAMES = ("nothing", "rtp", "pcm")


class CallLoop:
    """Per-call turn-taking and playout; ``feed_rtp``/``feed_pcm`` in, ``next_frame`` per tick.

    Each buffer the codec or the resampler writes is kept twice, as an array (for their Python
    calls) and as a typed view of the same memory (for the compiled parts); in the twin the two
    are one object.
    """

    def __init__(self, silero, settings=None, acoustic_stage=None, call_key=None):
        from parley.core import call_loop as face

        self._face = face
        self.settings = settings = settings or face.CallLoopSettings()
        rate = settings.line_rate
        self.frame_samples = n = rate * settings.frame_ms // 1000
        self.analysis_samples = ANALYSIS_RATE * settings.frame_ms // 1000
        self.call_key = call_key if call_key is not None else id(self)
        self._acoustic = acoustic_stage
        self._acoustic_pending = False
        self._codec = CODECS.index(settings.codec)
        self._payload_bytes = n * (2 if self._codec == _L16 else 1)
        self._source = _NO_SOURCE
        self._decode = _codec.ulaw_decode_into if self._codec == _PCMU else _codec.alaw_decode_into
        self._encode = _codec.ulaw_encode_into if self._codec == _PCMU else _codec.alaw_encode_into
        self._to_float = _codec.pcm16_to_float32_into
        self._to_pcm16 = _codec.float32_to_pcm16_into

        self._jitter = _jitter.JitterBuffer(settings.jitter, n, rate)
        self._framer = _framing.Framer(rate, settings.frame_ms)
        self._upsampler = _resampling.StreamResampler(rate, ANALYSIS_RATE) if rate != ANALYSIS_RATE else None
        self._upsample = self._upsampler.process_into if self._upsampler is not None else None
        self._voice_resamplers = {}
        self.vad = _vad.TwoStageVad(silero, ANALYSIS_RATE, settings.frame_ms, settings.vad)
        self.endpointer = _endpointer.Endpointer(settings.endpointer, rate, settings.frame_ms)
        self.barge_in = _bargein.BargeInDetector(settings.barge_in, rate, settings.frame_ms)
        self.playout = _playout.Playout(rate, settings.frame_ms)
        self._reference = np.frombuffer(self.playout.reference, dtype=np.float32)
        """A view of the frame playout just sent: the barge-in detector's echo reference."""

        self._packet_pcm_array = np.zeros(n, np.int16)
        self._packet_pcm = self._packet_pcm_array
        self._in_pcm_array = np.zeros(n, np.int16)
        self._in_pcm = self._in_pcm_array
        self._in_array = np.zeros(n, np.float32)
        self._in = self._in_array
        self._analysis_array = np.zeros(self.analysis_samples, np.float32)
        self._analysis = self._analysis_array
        self._out_array = np.zeros(n, np.float32)
        self._out = self._out_array
        self._out_pcm = np.zeros(n, np.int16)
        self._out_codes = bytearray(n)
        self._turn_audio_array = np.frombuffer(lazy_zeros(settings.turn_audio_s * ANALYSIS_RATE, "f"), np.float32)
        self._turn_audio = self._turn_audio_array
        self._analysis_written = 0
        self._speech = False
        self.position = 0
        self.packets_malformed = 0
        """Packets whose payload is not one frame of the codec: dropped, the loop goes on."""
        self._events = deque()

    def feed_rtp(self, seq, timestamp, payload, arrival_ns):
        """Hand over one RTP packet's payload; returns whether the jitter buffer kept it."""
        self._choose_source(_RTP)
        if len(payload) != self._payload_bytes:
            self.packets_malformed += 1
            return False
        if self._codec == _L16:
            self._packet_pcm_array[:] = np.frombuffer(payload, "<i2")
        else:
            self._decode(payload, self._packet_pcm_array)
        return self._jitter.put(seq, timestamp, self._packet_pcm, arrival_ns)

    def feed_pcm(self, samples):
        """Hand over caller audio at the line rate (float32, any length) from a file or local channel."""
        self._choose_source(_PCM)
        self._framer.push(np.ascontiguousarray(samples, dtype=np.float32))

    def play(self, samples, sample_rate, utterance_id):
        """Queue agent audio (float32 at ``sample_rate``, e.g. the voice's 22,050 Hz) for playout."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if sample_rate != self.settings.line_rate:
            resampler = self._voice_resamplers.get(sample_rate)
            if resampler is None:
                resampler = _resampling.StreamResampler(sample_rate, self.settings.line_rate)
                self._voice_resamplers[sample_rate] = resampler
            samples = resampler.process(samples)
        self.playout.push(samples, utterance_id)

    def next_frame(self):
        """Run one tick; return the frame to send (codec bytes, or float32 for ``l16``).

        With PCM input the tick runs only once a whole frame has been fed: otherwise None.
        The returned buffer is reused by the next tick: send or copy it first.
        """
        if not self._tick():
            return None
        if self._codec == _L16:
            return self._out_array
        self._to_pcm16(self._out_array, self._out_pcm)
        self._encode(self._out_pcm, self._out_codes)
        return self._out_codes

    def next_event(self):
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def turn_audio(self, from_sample, to_sample=None):
        """The caller's audio at 16 kHz between two line-rate sample positions (a copy, for STT)."""
        scale = ANALYSIS_RATE // self.settings.line_rate
        size = self._turn_audio_array.shape[0]
        end = self._analysis_written if to_sample is None else min(to_sample * scale, self._analysis_written)
        begin = max(from_sample * scale, self._analysis_written - size, 0)
        if end <= begin:
            return np.zeros(0, np.float32)
        return np.take(self._turn_audio_array, np.arange(begin, end) % size)

    def played_samples(self, utterance_id):
        """Line-rate samples of an agent utterance the caller has heard so far."""
        return self.playout.played_samples(utterance_id)

    def _choose_source(self, source):
        if self._source == _NO_SOURCE:
            self._source = source
        elif self._source != source:
            raise self._face.CallLoopConfigError(
                f"this call is fed by {_SOURCE_NAMES[self._source]}; feeding {_SOURCE_NAMES[source]} "
                "as well would mix two streams")

    def _tick(self):
        """One frame through the parts; False when PCM input holds no whole frame yet."""
        if self._source == _PCM:
            if not self._framer.pop_into(self._in):
                return False
        else:
            self._jitter.pop_into(self._in_pcm)
            self._to_float(self._in_pcm_array, self._in_array)
        start = self.position
        self.position += self.frame_samples
        self._analyse()
        agent_audio = self.playout.next_frame_into(self._out)
        self.barge_in.agent_speaking = agent_audio
        barged = agent_audio and self.barge_in.feed(self._in, self._reference, start)
        if barged:
            self._barge_in()
        # While the agent talks, what the mic hears is echo until the detector says otherwise.
        event = self.endpointer.feed(self._speech and (barged or not agent_audio), start)
        if event != _NO_EVENT:
            self._endpoint_event(event)
        elif self._acoustic_pending:
            self._follow_acoustic_stage()
        return True

    def _analyse(self):
        """The frame at 16 kHz: into the ring of audio kept for STT, and through the VAD."""
        if self._upsampler is None:
            self._analysis[:] = self._in
        else:
            self._upsample(self._in_array, self._analysis_array)
        n = self.analysis_samples
        size = self._turn_audio.shape[0]
        at = self._analysis_written % size
        first = min(n, size - at)
        self._turn_audio[at:at + first] = self._analysis[:first]
        if first < n:
            self._turn_audio[:n - first] = self._analysis[first:]
        self._analysis_written += n
        self._speech = self.vad.process_frame(self._analysis)

    def _barge_in(self):
        utterance = self.playout.current_utterance_id
        self.playout.flush()
        self._out[:] = 0.0
        self._events.append(self._face.BargeIn(self.barge_in.event_sample, self.barge_in.barge_in_sample, utterance,
                                               self.playout.played_samples(utterance)))

    def _endpoint_event(self, event):
        ep = self.endpointer
        if event == _SPEECH_START:
            self._events.append(self._face.SpeechStarted(ep.event_sample, ep.stt_start_sample))
        elif event == _SHORT_SILENCE:
            self._events.append(self._face.TurnPaused(ep.event_sample))
            if self._acoustic is not None:
                tail = self.turn_audio(max(0, ep.event_sample - ACOUSTIC_WINDOW_S * self.settings.line_rate))
                turn_samples = (ep.event_sample - ep.stt_start_sample) * ANALYSIS_RATE // self.settings.line_rate
                silence_samples = (ep.event_sample - ep.speech_end_sample) * ANALYSIS_RATE // self.settings.line_rate
                self._acoustic.request(self.call_key, tail, ep.event_sample, turn_samples, silence_samples)
                self._acoustic_pending = True
        else:
            self._cancel_acoustic()
            reason = "max_turn" if event == _MAX_TURN_REACHED else "silence"
            self._events.append(self._face.TurnEnded(ep.event_sample, ep.speech_end_sample, reason))

    def _follow_acoustic_stage(self):
        if self.endpointer.state != _TRAILING_SILENCE:
            self._cancel_acoustic()
            return
        verdict = self._acoustic.poll(self.call_key)
        if verdict is None:
            return
        self._acoustic_pending = False
        if verdict.complete and self.endpointer.end_turn_now(verdict.sample) == _END_OF_TURN:
            ep = self.endpointer
            self._events.append(self._face.TurnEnded(ep.event_sample, ep.speech_end_sample, "acoustic",
                                                     verdict.transcript))

    def _cancel_acoustic(self):
        if self._acoustic_pending:
            self._acoustic.cancel(self.call_key)
            self._acoustic_pending = False
