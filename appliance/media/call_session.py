"""One call end to end: the real-time loop, the agent's turns over the bus, the call's record.

The channel (file, local audio, SIP) feeds caller audio and calls ``next_frame()`` once per
frame period, and sends what comes back. That tick never waits on a model: each agent turn
(STT, then the agent, then TTS sentence by sentence) runs in its own thread with its own bus
client and hands audio to the tick through a queue; writes to the store go through a recorder
thread. On barge-in the loop has already flushed playout in the same frame; the session then
cancels the turn's jobs on their workers and cuts the agent's message to the words heard.

At each pause in the caller's turn a head start transcribes the turn so far and has the agent
evaluate the prompt of its reply; if the turn then ends with no more speech, the turn takes the
transcript and finds the prompt evaluated. Nothing is said or done before the turn has ended.

A worker that dies mid-turn is restarted by the router and its retryable job (STT, TTS) runs
again on the new process; if the turn still fails, the caller hears the agent's apology
(rendered when the call starts) and the call is handed to a person with its record kept.
"""

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from parley.appliance.agent.conversation import copy_state, heard_words, new_state, record_interruption, transcript
from parley.appliance.bus import BusClient, BusError, Sequencer
from parley.appliance.media.end_of_turn import SharedTranscripts, pcm16, words_on_bus
from parley.appliance.store import Store
from parley.core.call_loop import BargeIn, CallLoop, CallLoopSettings, SpeechStarted, TurnEnded, TurnPaused

log = logging.getLogger("parley.call")

DTMF_PAUSE_MS = 2000
"""Keys typed without ``#`` reach the agent after this long without another key."""
HEAD_START_TURN_IDS = 1 << 20
"""A head start's jobs carry this plus the index of the turn they prepare: never the turn's own id,
so cancelling the one spares the other."""
HEAD_START_WAIT_S = 10.0
"""Longest a turn waits for its head start's transcript before transcribing the turn itself."""
SPAN_ORDER = ("user_speech_end", "endpoint", "stt_final", "llm_first_token", "first_sentence", "tts_first_audio",
              "playout_start")


@dataclass
class TurnRecord:
    """What one exchange (caller turn, agent reply) left behind; the demo prints these."""

    index: int
    caller_text: str = ""
    agent_text: str = ""
    heard_text: str | None = None
    spans: dict = field(default_factory=dict)
    tools: list = field(default_factory=list)
    kb_chunk_ids: tuple = ()
    action: str = "listen"
    error: str | None = None
    filler: bool = False
    """The soft-timeout filler played before the reply was ready."""
    end_reason: str | None = None
    """What ended the caller's turn: ``silence`` (the hangover), ``acoustic`` (the end-of-turn
    stage: the words so far), ``max_turn``, or ``keys`` (typed on the keypad); None for the greeting."""
    playout_gap_ms: int = 0
    """Silence inside the reply: how long playout ran dry after the reply began to play and before
    its last words were made (the LLM or the voice slower than speech). The caller hears it as the
    agent stalling mid-answer; pauses the voice puts between sentences are not counted."""

    @property
    def voice_to_voice_ms(self):
        if "playout_start" in self.spans and "user_speech_end" in self.spans:
            return (self.spans["playout_start"] - self.spans["user_speech_end"]) / 1e6
        return None


class _AgentTurn(threading.Thread):
    """STT, the agent and TTS for one turn, off the frame path."""

    def __init__(self, session, index, audio, state, from_sample, typed=None, words=None, head_start=None):
        super().__init__(name=f"turn-{session.call_id[:8]}-{index}", daemon=True)
        self.session = session
        self.index = index
        self.utterance_id = index
        self.audio = audio
        """16 kHz caller audio for STT, or None for the greeting and typed input."""
        self.typed = typed
        """What the caller keyed in on the phone's keypad (DTMF), instead of audio."""
        self.words = words
        """The turn's words as the acoustic end-of-turn stage already transcribed them, or None."""
        self.head_start = head_start
        """The ``_HeadStart`` that transcribed this very turn at its last pause, or None."""
        self.state = state
        self.from_sample = from_sample
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        """Set when the turn's reply is complete: the agent's state arrived (the worker may still be
        evaluating the conversation ahead of the next turn), or the turn ended otherwise."""
        self.record = TurnRecord(index)
        self.sentences = []
        """(text, start_sample, end_sample) at the line rate, in utterance order."""
        self.pushed = 0
        self.filler_samples = 0
        """Samples of the soft-timeout filler at the start of the utterance (0: none played)."""
        self.lock = threading.Lock()
        """Guards ``pushed`` and the audio queue order between the turn and the soft-timeout timer."""
        self.result_state = None
        self.tool_state = None
        """The state as the turn's last tool left it (``tool_result``), kept when the reply is cut."""
        self.handoff = None

    def run(self):
        session = self.session
        client = BusClient(session.endpoints.clients, name=f"call-{session.call_id[:8]}")
        stamp = Sequencer()
        try:
            body = {"agent": session.agent_folder, "state": self.state}
            if self.audio is not None:
                text = self._transcribe(client, stamp)
                if self.cancelled.is_set():
                    return
                if not text:
                    self.record.action = "nothing_heard"
                    return
                body["text"] = text
            elif self.typed is not None:
                self.record.caller_text = body["text"] = self.typed
            timer = self._soft_timeout_timer()
            request = stamp.make("agent_turn", body, call_id=session.call_id, turn_id=self.index)
            try:
                for reply in client.stream("agent", request, timeout=session.agent_timeout):
                    if self.cancelled.is_set():
                        break
                    self._on_agent_reply(client, stamp, reply)
            finally:
                if timer is not None:
                    timer.cancel()
        except BusError as exc:
            if not self.cancelled.is_set():
                self.record.error = f"{type(exc).__name__}: {exc}"
                log.warning("turn_failed call_id=%s turn_id=%d error=%s", session.call_id, self.index, self.record.error)
        finally:
            client.close()
            self.finished.set()

    @property
    def from_caller(self):
        """The turn answers something the caller said or keyed in (not the greeting)."""
        return self.audio is not None or self.typed is not None

    def _soft_timeout_timer(self):
        """Plays the filler if the reply's first sentence is not out ``soft_timeout_ms`` after the
        caller's turn ended (the greeting and a call without the filler rendered get none)."""
        session = self.session
        timeout_ms = session.agent.conversation.soft_timeout_ms
        if self.audio is None or not timeout_ms or "endpoint" not in self.record.spans:
            return None
        waited_ms = (time.monotonic_ns() - self.record.spans["endpoint"]) / 1e6
        timer = threading.Timer(max(0.0, timeout_ms - waited_ms) / 1000, self._play_filler)
        timer.daemon = True
        timer.start()
        return timer

    def _play_filler(self):
        filler = self.session.lines.get("filler")
        with self.lock:
            if filler is None or self.pushed or self.cancelled.is_set() or self.finished.is_set():
                return
            self.session.audio_out.put((self.utterance_id, filler))
            self.pushed = self.filler_samples = filler.shape[0]
            self.record.filler = True

    def _transcribe(self, client, stamp):
        if self.words is not None:  # the end-of-turn check transcribed exactly this turn
            if self.head_start is not None:
                self.head_start.transcript(0)  # taken over: it sends no prefill from now on
            self.record.spans["stt_final"] = time.monotonic_ns()
            self.record.caller_text = self.words
            return self.words
        heard = self.head_start.transcript(HEAD_START_WAIT_S) if self.head_start is not None else None
        if heard is not None:  # the head start transcribed exactly this turn, at its pause
            self.record.caller_text, self.record.spans["stt_final"] = heard
            return self.record.caller_text
        pcm = pcm16(self.audio)
        request = stamp.make("stt_request", {"sample_rate": 16000}, call_id=self.session.call_id, turn_id=self.index)
        self.record.caller_text, self.record.spans["stt_final"] = words_on_bus(client, request, pcm)
        return self.record.caller_text

    def _on_agent_reply(self, client, stamp, reply):
        spans = self.record.spans
        if reply.type == "llm_token":
            spans.setdefault("llm_first_token", reply.t_ns)
        elif reply.type == "llm_sentence":
            spans.setdefault("first_sentence", reply.t_ns)
            self._speak(client, stamp, reply.body["text"])
        elif reply.type == "tool_result":
            body = dict(reply.body)
            self.tool_state = body.pop("state", self.tool_state)
            self.record.tools.append(body)
        elif reply.type == "handoff":
            self.handoff = reply.body
        elif reply.type == "agent_state":
            self.result_state = reply.body["state"]
            self.record.action = reply.body["action"]
            self.record.kb_chunk_ids = tuple(reply.body["kb_chunk_ids"])
            self.record.agent_text = reply.body["text"]
            self.finished.set()

    def _speak(self, client, stamp, text):
        session = self.session
        request = stamp.make("tts_request", {"text": text, "voice": session.voice, "sample_rate": session.line_rate},
                             call_id=session.call_id, turn_id=self.index)
        start, received = self.pushed, 0
        for reply in client.stream("tts", request):
            if self.cancelled.is_set():
                return
            if reply.type != "tts_audio":
                continue
            self.record.spans.setdefault("tts_first_audio", reply.t_ns)
            samples = np.frombuffer(reply.audio, dtype="<i2").astype(np.float32) / 32768.0
            # A job re-run after its worker died streams the sentence again from offset 0: skip what was played.
            skip = received - reply.body["offset_samples"]
            if skip >= samples.shape[0]:
                continue
            samples = samples[max(0, skip):]
            received = reply.body["offset_samples"] + max(0, skip) + samples.shape[0]
            with self.lock:
                if not received - samples.shape[0]:
                    start = self.pushed  # the filler may have gone out first
                session.audio_out.put((self.utterance_id, samples))
                self.pushed += samples.shape[0]
        self.sentences.append((text, start, self.pushed))


class _HeadStarter(threading.Thread):
    """The call's one thread for head starts, started with the call and fed by the tick. (A thread
    started at each pause stalled the tick: ``Thread.start()`` hands the GIL to the new thread,
    which keeps it for up to the 5 ms switch interval; an RTP packet then left 8 ms late.)"""

    def __init__(self, session):
        super().__init__(name=f"head-{session.call_id[:8]}", daemon=True)
        self.session = session
        self.queue = queue.SimpleQueue()

    def run(self):
        client = BusClient(self.session.endpoints.clients, name=f"head-{self.session.call_id[:8]}")
        stamp = Sequencer()
        try:
            while (head := self.queue.get()) is not None:
                head.run(client, stamp)
        finally:
            client.close()

    def stop(self):
        self.queue.put(None)


class _HeadStart:
    """At a pause in the caller's turn: the turn so far transcribed, then the agent asked to evaluate
    the prompt of a reply to it (``agent_prefill``, done on the worker until its next job), in case
    the turn has ended. A turn that ends with no more speech takes it over; when the caller goes on
    it is dropped (its transcription cancelled; the next job stops the evaluation)."""

    def __init__(self, session, turn_id, audio, from_sample, paused_sample, state):
        self.session = session
        self.turn_id = turn_id
        self.audio = audio
        self.from_sample = from_sample
        self.paused_sample = paused_sample
        self.state = state
        self.cancelled = threading.Event()
        self._transcribed = threading.Event()
        self._heard = None
        """(text, stt_final t_ns) once transcribed; stays None when the transcription failed."""
        self._lock = threading.Lock()
        self._taken = False

    def run(self, client, stamp):
        session = self.session
        if self.cancelled.is_set():
            self._transcribed.set()
            return
        try:
            pcm = pcm16(self.audio)
            request = stamp.make("stt_request", {"sample_rate": 16000}, call_id=session.call_id, turn_id=self.turn_id)
            text, t_ns = session.transcripts.transcribe(pcm, lambda: words_on_bus(client, request, pcm),
                                                        timeout=HEAD_START_WAIT_S)
            with self._lock:
                self._heard = (text, t_ns)
                self._transcribed.set()
                if not text or self._taken or self.cancelled.is_set():
                    return  # the turn has its words and sends its own job now: a prefill would only race it
            body = {"agent": session.agent_folder, "state": self.state, "text": text}
            client.request("agent", stamp.make("agent_prefill", body, call_id=session.call_id, turn_id=self.turn_id),
                           timeout=session.agent_timeout)
        except (BusError, TimeoutError) as exc:
            if not self.cancelled.is_set():
                log.info("head_start_failed call_id=%s turn_id=%d error=%s: the turn does its own work",
                         session.call_id, self.turn_id - HEAD_START_TURN_IDS, exc)
        finally:
            self._transcribed.set()

    def covers(self, from_sample, speech_end_sample):
        """Whether this head start heard exactly the turn that ended there: the same start, and no
        speech after its pause."""
        return from_sample == self.from_sample and speech_end_sample <= self.paused_sample

    def transcript(self, timeout):
        """Taken over by the turn: ``(text, stt_final t_ns)`` once transcribed, or None when the
        transcription failed or took longer than ``timeout`` seconds."""
        with self._lock:
            self._taken = True
        self._transcribed.wait(timeout)
        return self._heard


class _Recorder(threading.Thread):
    """Writes the call to the store in order, off the frame path (a commit waits on fsync)."""

    def __init__(self, store_path):
        super().__init__(name="call-recorder", daemon=True)
        self.store_path = store_path
        self.jobs = queue.SimpleQueue()
        self.failures = []

    def submit(self, job):
        self.jobs.put(job)

    def close(self):
        self.jobs.put(None)
        self.join()

    def run(self):
        with Store.open(self.store_path) as store:
            while (job := self.jobs.get()) is not None:
                try:
                    job(store)
                except Exception as exc:  # a failed write must not stop the ones after it
                    log.exception("store_write_failed job=%s", getattr(job, "__name__", job))
                    self.failures.append(exc)


class CallSession:
    """One call's loop, turns and record; the channel feeds audio and ticks ``next_frame()``."""

    def __init__(self, *, agent, agent_folder, agent_version_id, endpoints, store_path, silero, channel,
                 caller="", line_rate=8000, codec="l16", call_id=None, agent_timeout=60.0, acoustic=None,
                 transcripts=None):
        """``acoustic``: the process's acoustic end-of-turn stage (``media.end_of_turn``), or None for
        silence timing alone; used when the agent's ``conversation.end_of_turn`` is ``acoustic``.
        ``transcripts``: the ``SharedTranscripts`` the stage transcribes through, so that a pause's
        audio is transcribed once for the stage and the head start."""
        self.agent = agent
        self.agent_folder = str(agent_folder)
        self.endpoints = endpoints
        self.voice = agent.voice.name
        self.line_rate = line_rate
        self.agent_timeout = agent_timeout
        self.call_id = call_id or str(uuid.uuid4())
        self.transcripts = transcripts or SharedTranscripts()
        self.head_start = agent.conversation.head_start
        """Whether this call transcribes and prefills at the caller's pauses (``_HeadStart``)."""
        self._acoustic = acoustic if agent.conversation.end_of_turn == "acoustic" else None
        self.loop = CallLoop(silero, CallLoopSettings(line_rate=line_rate, codec=codec, endpointer=agent.endpointer,
                                                      barge_in=agent.barge_in),
                             acoustic_stage=self._acoustic, call_key=self.call_id)
        self.audio_out = queue.SimpleQueue()
        self.turns = []
        """Every finished exchange, in order (the greeting is the first)."""
        self.outcome = None
        self.handoff = None
        self.closed = threading.Event()
        self._state = new_state()
        self._turn = None
        self._index = -1
        self._live_utterance = None
        self._barged_in = False
        self._speech_from = None
        self._went_on_from = None
        """Where the caller's words began when a reply to them was dropped because they went on."""
        self._head_start = None
        self._head_starter = None
        """Started at the call's first head start (a thread started when a call is set up delays
        the calls already running)."""
        self._ticks = 0
        self._t0_ns = None
        self._control = BusClient(endpoints.clients, name=f"control-{self.call_id[:8]}")
        self.lines = {}
        """Fixed lines rendered once at the call's rate: apology, filler, silence prompt, goodbye,
        time limit; a line not rendered (TTS down) is simply not played."""
        self._idle_frames = 0
        self._silence_prompts = 0
        self._keys = []
        self._keys_at = 0
        self._fixed_utterance = 10_000
        self._recorder = _Recorder(store_path)
        self._recorder.start()
        self._recorder.submit(lambda store: store.start_call(agent_version_id, channel, caller=caller, call_id=self.call_id))
        threading.Thread(target=self._render_lines, name="fixed-lines", daemon=True).start()

    # ---- the channel's side ----------------------------------------------------------------
    def start(self):
        """Answer: the agent's greeting starts at once. The head starts' thread starts here too,
        not at the first pause: starting a thread in a tick hands it the GIL, and with many calls
        pausing at once the media clock's tick waited on every one of them."""
        if self.head_start:
            self._head_starter = _HeadStarter(self)
            self._head_starter.start()
        self._begin_turn(None, 0)

    def feed_pcm(self, samples):
        self._t0_ns = self._t0_ns or time.monotonic_ns()
        self.loop.feed_pcm(samples)

    def feed_rtp(self, seq, timestamp, payload, arrival_ns):
        self._t0_ns = self._t0_ns or arrival_ns
        self.loop.feed_rtp(seq, timestamp, payload, arrival_ns)

    def feed_dtmf(self, digit):
        """A key pressed on the caller's phone. Keys gather until ``#`` or a pause of
        ``dtmf_pause_ms``; they then reach the agent as the caller's turn, typed. A key pressed
        while the agent talks interrupts it, as speech does."""
        if self.closed.is_set():
            return
        if digit == "#":
            self._submit_keys()
            return
        self._keys.append(digit)
        self._keys_at = self._ticks
        turn = self._turn
        if turn is not None and (turn.pushed or not self._agent_quiet()):
            self.loop.playout.flush()
            self._cancel(turn, "keypad")
            turn.record.heard_text = heard_words(turn.sentences or [(turn.record.agent_text, 0, turn.pushed)],
                                                 self._heard_samples(turn))
            self._finish_turn(turn)

    def _heard_samples(self, turn):
        """Samples of ``turn``'s voice the caller heard: none while its audio is still queued for
        playout (a key can come between the voice's first audio and the tick that plays it)."""
        try:
            return self.loop.played_samples(turn.utterance_id)
        except KeyError:
            return 0

    def _submit_keys(self):
        keys, self._keys = "".join(self._keys), []
        if not keys:
            return
        turn = self._turn
        if turn is not None:
            self._cancel(turn, "keypad")
            self._turn = None
        log.info("dtmf call_id=%s keys=%s", self.call_id, keys)
        now = time.monotonic_ns()
        self._begin_turn(None, self.loop.position, {"user_speech_end": now, "endpoint": now}, typed=keys)

    def next_frame(self):
        """One tick: returns the frame to send (None until a whole frame of input is in)."""
        if self._keys and (self._ticks - self._keys_at) * self.loop.settings.frame_ms >= DTMF_PAUSE_MS:
            self._submit_keys()
        self._queue_agent_audio()
        frame = self.loop.next_frame()
        if frame is None:
            return None
        self._ticks += 1
        turn = self._turn
        if (turn is not None and self.loop.playout.current_utterance_id == turn.utterance_id
                and self.loop.played_samples(turn.utterance_id) > turn.filler_samples):
            turn.record.spans.setdefault("playout_start", time.monotonic_ns())
        elif (turn is not None and self.loop.playout.current_utterance_id == -1 and "playout_start" in turn.record.spans
              and not turn.finished.is_set()):
            turn.record.playout_gap_ms += self.loop.settings.frame_ms
        while (event := self.loop.next_event()) is not None:
            if isinstance(event, SpeechStarted):
                self._speech_from = event.stt_from_sample
                self._idle_frames = 0
                self._caller_went_on()
            elif isinstance(event, TurnPaused):
                self._on_turn_paused(event)
            elif isinstance(event, BargeIn):
                self._on_barge_in(event)
            elif isinstance(event, TurnEnded):
                self._on_turn_ended(event)
        if turn is not None and turn is self._turn and turn.finished.is_set() and self._agent_quiet():
            self._finish_turn(turn)
        self._watch_the_clock()
        return frame

    def _watch_the_clock(self):
        """The silence timeout (prompt, then a polite goodbye) and the call's time limit."""
        if self.closed.is_set():
            return
        flow = self.agent.conversation
        frame_ms = self.loop.settings.frame_ms
        if self._ticks * frame_ms >= flow.max_call_s * 1000:
            if self._turn is not None:
                self._cancel(self._turn, "time limit")
                self._turn = None
            self._say_line("time_limit", flow.time_limit_message)
            self._close("abandoned")
            return
        idle = self._turn is None and self._speech_from is None and self._agent_quiet()
        self._idle_frames = self._idle_frames + 1 if idle else 0
        if not flow.silence_timeout_s or self._idle_frames * frame_ms < flow.silence_timeout_s * 1000:
            return
        self._idle_frames = 0
        if self._silence_prompts < flow.silence_prompts:
            self._silence_prompts += 1
            self._say_line("silence_prompt", flow.silence_prompt)
        else:
            self._say_line("goodbye", self.agent.goodbye)
            self._close("abandoned")

    def say_fixed(self, name):
        """Play one of the agent's fixed lines now (``apology``, ``goodbye``...), also after the
        call has closed: the SIP channel apologises this way when a transfer fails."""
        self._say_line(name, self._fixed_texts()[name])

    def record_media(self, record):
        """Keep the channel's media figures for this call (codec, packets, loss, jitter, keys)."""
        call_id = self.call_id
        self._recorder.submit(lambda store: store.record_call_media(call_id, record))

    def _say_line(self, name, text):
        """Play a fixed line now and keep it in the conversation and the record as an agent turn."""
        audio = self.lines.get(name)
        if audio is not None:
            self._fixed_utterance += 1
            self._live_utterance = self._fixed_utterance
            self.loop.play(audio, self.line_rate, self._fixed_utterance)
        self._index += 1
        record = TurnRecord(self._index, agent_text=text, action=name)
        state = copy_state(self._state)
        state["entries"].append({"role": "agent", "text": text})
        self._state = state
        self.turns.append(record)
        self._recorder.submit(_turn_writer(self.call_id, record, False))

    @property
    def agent_speaking(self):
        """Agent audio is queued or playing, or a turn is still producing it."""
        return not self._agent_quiet() or (self._turn is not None and not self._turn.finished.is_set())

    def played_ms(self):
        """How long the current agent utterance has played so far."""
        turn = self._turn
        if turn is None:
            return 0.0
        try:
            return self.loop.played_samples(turn.utterance_id) * 1000 / self.line_rate
        except KeyError:
            return 0.0

    def hang_up(self, reason="caller hung up"):
        """The caller (or the channel) ended the call."""
        if self._turn is not None:
            self._cancel(self._turn, reason)
        self._close("abandoned" if self.outcome is None else self.outcome)

    def close(self):
        if not self.closed.is_set():
            self.hang_up()
        self._drop_head_start("call closed")
        if self._head_starter is not None:
            self._head_starter.stop()
        if self._acoustic is not None:
            self._acoustic.forget(self.call_id)
        self._recorder.close()
        self._control.close()

    # ---- turns -----------------------------------------------------------------------------
    def _begin_turn(self, audio, from_sample, spans=None, typed=None, end_reason=None, words=None, head_start=None):
        self._index += 1
        turn = _AgentTurn(self, self._index, audio, copy_state(self._state), from_sample, typed, words, head_start)
        turn.record.spans.update(spans or {})
        turn.record.end_reason = "keys" if typed is not None else end_reason
        self._turn = turn
        self._live_utterance = turn.utterance_id
        turn.start()

    def _queue_agent_audio(self):
        while True:
            try:
                utterance, samples = self.audio_out.get_nowait()
            except queue.Empty:
                return
            if utterance == self._live_utterance:
                self.loop.play(samples, self.line_rate, utterance)

    def _agent_quiet(self):
        return self.loop.playout.queued_samples == 0 and self.audio_out.empty()

    def _on_barge_in(self, event):
        turn = self._turn
        if turn is None or event.utterance_id != turn.utterance_id:
            return
        self._barged_in = True
        self._speech_from = min(self._speech_from if self._speech_from is not None else event.onset_sample,
                                event.onset_sample)
        self._cancel(turn, "barge_in")
        heard = heard_words(turn.sentences or [(turn.record.agent_text, 0, turn.pushed)], event.played_samples)
        turn.record.heard_text = heard
        log.info("barge_in call_id=%s turn_id=%d played_samples=%d heard=%r", self.call_id, turn.index,
                 event.played_samples, heard)
        self._finish_turn(turn)

    def _caller_went_on(self):
        """The caller speaks again before the reply to their last words has started playing: that
        reply is dropped unheard, and the turn now under way is answered together with it (an
        early end of turn, acoustic or not, then costs the caller nothing)."""
        turn = self._turn
        if turn is None or turn.audio is None or turn.pushed or not self._agent_quiet():
            return  # nothing to drop: the greeting, keys typed (their digits are in no audio), or playing
        self._cancel(turn, "caller went on")
        self._went_on_from = turn.from_sample if self._went_on_from is None else min(self._went_on_from, turn.from_sample)
        self._turn = None
        log.info("caller_went_on call_id=%s turn_id=%d", self.call_id, turn.index)

    def _on_turn_paused(self, event):
        """The caller paused: a head start on the reply, in case the turn has ended (when no reply is
        under way, the agent file allows it and the caller has spoken in this turn)."""
        self._drop_head_start("caller went on")
        if (not self.head_start or self._turn is not None or self._speech_from is None
                or self.closed.is_set()):
            return
        from_sample = self._turn_start(self._speech_from)
        head = _HeadStart(self, HEAD_START_TURN_IDS + self._index + 1, self.loop.turn_audio(from_sample, event.sample),
                          from_sample, event.sample, self._state)
        self._head_start = head
        self._head_starter.queue.put(head)

    def _drop_head_start(self, reason):
        head, self._head_start = self._head_start, None
        if head is not None:
            head.cancelled.set()
            self._control.cancel(self.call_id, head.turn_id, reason=reason)

    def _turn_start(self, from_sample):
        """Where the turn's words begin: from ``from_sample``, or earlier when a reply to the caller's
        words before was dropped because they went on."""
        return from_sample if self._went_on_from is None else min(from_sample, self._went_on_from)

    def _on_turn_ended(self, event):
        turn = self._turn
        from_sample = self._speech_from if self._speech_from is not None else event.speech_end_sample
        spans = {"user_speech_end": self._sample_ns(event.speech_end_sample), "endpoint": time.monotonic_ns()}
        words = event.transcript
        if self._went_on_from is not None:
            from_sample = self._turn_start(from_sample)
            words = None  # the stage heard the latest part only
            self._went_on_from = None
        if turn is not None and not self._barged_in:
            if turn.pushed or not self._agent_quiet():
                return  # the agent is speaking and was not interrupted: a backchannel ("mm-hm")
            if turn.from_caller:  # still thinking about the caller's last words: take them together
                self._cancel(turn, "caller went on")
                from_sample = min(from_sample, turn.from_sample)
                words = None  # the stage heard the latest part only
                self._turn = None
        self._barged_in = False
        self._speech_from = None
        head, self._head_start = self._head_start, None
        if head is not None and not head.covers(from_sample, event.speech_end_sample):
            self._head_start = head
            self._drop_head_start("caller went on")
            head = None
        if self.closed.is_set():
            return
        audio = self.loop.turn_audio(from_sample, event.speech_end_sample)
        log.info("turn_ended call_id=%s reason=%s head_start=%s", self.call_id, event.reason, head is not None)
        self._begin_turn(audio, from_sample, spans, end_reason=event.reason, words=words, head_start=head)

    def _cancel(self, turn, reason):
        if turn.cancelled.is_set():
            return
        turn.cancelled.set()
        self._live_utterance = None
        self._control.cancel(self.call_id, turn.index, reason=reason)

    def _finish_turn(self, turn):
        """The agent's reply has played out (or was cut): keep it, and act on its outcome."""
        if turn is self._turn:
            self._turn = None
        record = turn.record
        if turn.from_caller and record.action == "nothing_heard":
            return
        if record.error is not None:
            self._fail(turn)
            return
        state = turn.result_state
        if state is None:  # cut before the agent finished: keep what was said so far
            if turn.tool_state is not None:
                # ...and what its tools did: their effect is real, and the read-back a tool
                # answered is closed (else the caller's next "yes" would run it again).
                state = copy_state(turn.tool_state)
            else:
                state = copy_state(turn.state)
                if record.caller_text:
                    state["entries"].append({"role": "caller", "text": record.caller_text})
            record.agent_text = " ".join(text for text, _, _ in turn.sentences)
            state["entries"].append({"role": "agent", "text": record.agent_text})
        else:
            state = copy_state(state)
        if record.heard_text is not None:
            record_interruption(state, record.heard_text)
        self._state = state
        if self._acoustic is not None:  # the caller's next words are read as a reply to this
            self._acoustic.set_agent_line(self.call_id, record.agent_text if record.heard_text is None
                                          else record.heard_text)
        if record.playout_gap_ms:
            log.info("playout_gap call_id=%s turn_id=%d gap_ms=%d", self.call_id, record.index, record.playout_gap_ms)
        self.turns.append(record)
        self._recorder.submit(_turn_writer(self.call_id, record, turn.from_caller))
        if turn.handoff is not None:
            self._hand_off(turn.handoff)
        if record.heard_text is None and record.action in ("end_call", "transfer"):
            self._close("completed" if record.action == "end_call" else "escalated")

    def _fail(self, turn):
        """A turn failed for good: apologise, hand the call to a person, keep everything."""
        self.turns.append(turn.record)
        apology = self.lines.get("apology")
        if apology is not None and not self.closed.is_set():
            self._live_utterance = turn.utterance_id + 1000
            self.loop.play(apology, self.line_rate, self._live_utterance)
        state = copy_state(self._state)
        if turn.record.caller_text:
            state["entries"].append({"role": "caller", "text": turn.record.caller_text})
        state["entries"].append({"role": "agent", "text": self.agent.apology})
        self._state = state
        self._recorder.submit(_turn_writer(self.call_id, turn.record, turn.from_caller,
                                           agent_text=self.agent.apology))
        self._hand_off({"reason": f"technical problem: {turn.record.error}",
                        "summary": "The agent could not continue the call because a part of the appliance failed; "
                                   "the transcript so far is attached.",
                        "collected": {}, "transcript": transcript(state)})
        self._close("escalated")

    def _hand_off(self, record):
        handoff = self.handoff = dict(record, target=self.agent.escalation.transfer_extension)
        call_id = self.call_id

        def write(store):
            handoff["id"] = store.record_handoff(call_id, reason=record["reason"], summary=record["summary"],
                                                 collected=record["collected"], transcript=record["transcript"],
                                                 target=self.agent.escalation.transfer_extension).id
        self._recorder.submit(write)

    def _close(self, outcome):
        if self.closed.is_set():
            return
        self.outcome = outcome
        call_id = self.call_id
        self._recorder.submit(lambda store: store.end_call(call_id, outcome))
        self.closed.set()
        log.info("call_ended call_id=%s outcome=%s turns=%d", self.call_id, outcome, len(self.turns))

    def _sample_ns(self, sample):
        return (self._t0_ns or time.monotonic_ns()) + round(sample * 1e9 / self.line_rate)

    def _fixed_texts(self):
        flow = self.agent.conversation
        return {"apology": self.agent.apology, "filler": flow.soft_timeout_filler, "silence_prompt": flow.silence_prompt,
                "goodbye": self.agent.goodbye, "time_limit": flow.time_limit_message}

    def _render_lines(self):
        texts = self._fixed_texts()
        client = BusClient(self.endpoints.clients, name=f"lines-{self.call_id[:8]}")
        try:
            for name, text in texts.items():
                self.lines[name] = _rendered(client, self.voice, self.line_rate, text, self.call_id)
        except BusError as exc:
            log.warning("fixed_lines_not_rendered call_id=%s error=%s", self.call_id, exc)
        finally:
            client.close()


_RENDERED = {}
"""(voice, rate, text) -> samples: a fixed line is synthesized once per appliance, not per call."""
_RENDERED_LOCK = threading.Lock()


def _rendered(client, voice, rate, text, call_id):
    key = (voice, rate, text)
    with _RENDERED_LOCK:
        if key in _RENDERED:
            return _RENDERED[key]
    request = Sequencer().make("tts_request", {"text": text, "voice": voice, "sample_rate": rate}, call_id=call_id)
    chunks = [np.frombuffer(r.audio, dtype="<i2") for r in client.request("tts", request) if r.type == "tts_audio"]
    samples = (np.concatenate(chunks).astype(np.float32) / 32768.0) if chunks else None
    with _RENDERED_LOCK:
        _RENDERED[key] = samples
    return samples


def _turn_writer(call_id, record, has_caller, agent_text=None):
    def write(store):
        if has_caller and record.caller_text:
            store.append_turn(call_id, "caller", record.caller_text)
        text = agent_text if agent_text is not None else record.agent_text
        agent_turn = store.append_turn(call_id, "agent", text or "", heard_text=record.heard_text,
                                       kb_chunk_ids=record.kb_chunk_ids)
        for name in SPAN_ORDER:
            if name in record.spans:
                store.record_span(agent_turn.id, name, record.spans[name])
        for tool in record.tools:
            store.record_tool_call(agent_turn.id, tool["name"], tool["arguments"], tool["status"],
                                   result=tool.get("result"), confirmed=tool["confirmed"],
                                   started_ns=tool["started_ns"], ended_ns=tool["ended_ns"])
    write.__name__ = f"turn_{record.index}"
    return write
