"""The acoustic end-of-turn stage: Smart Turn v3.2 says whether the caller sounds finished.

After the VAD has seen a short silence (``action_delay_ms``) the endpointer asks this stage for a
verdict on the last 8 s of caller audio; a confident "complete" lets it end the turn early instead
of waiting out the whole silence hangover. Scoring takes tens of milliseconds, so it runs on a
worker thread and the 20 ms loop only ever hands audio over and picks verdicts up: ``request``,
``poll`` and ``cancel`` return at once (they touch a few dicts under a lock the worker holds only
between scorings, never during one).

The model alone is not trusted (see the End-of-turn caution in MODELS.md): it misjudges plainly
finished questions and flips on inaudible dither. Given a ``transcriber`` (audio -> the words so
far; on a call, the STT worker over the bus), the stage hears the words too
(``parley.core.turn_text``):

* with a ``text_model`` (a small chat model reading the words), every request is transcribed and
  the verdict weighs both: "complete" when the words' log-odds plus ``smart_turn_weight`` times
  Smart Turn's reach ``text_threshold``, and the string rules do not say "unfinished". With the
  default weight, 0, Smart Turn is not run at all: on the evaluation set it added nothing the
  words did not already tell. A "complete" is then checked once more on the words transcribed up
  to the end of speech, without the pause's silence (``reread_at_speech_end``): both readings must
  say "complete". Whisper tiny tends to finish a cut-off sentence in the silence after it ("I'd
  like to book an appointment with | you."), and such an invented last word rarely survives a
  second hearing of slightly different audio;
* without one, the words are asked for only when Smart Turn says "complete", and can only veto it.

The endpointer falls back to silence timing whenever the verdict is not "complete".

Input, as the model was trained (pipecat-ai/smart-turn ``train.py``) and as Pipecat 1.14.0's
``LocalSmartTurnAnalyzerV3`` feeds it: the last 8 s at 16 kHz, left-padded with zeros when
shorter, normalised to zero mean and unit variance over the whole padded window (variance
epsilon 1e-7), then Whisper's log-mel ``[80, 800]``. The output named ``logits`` is already a
sigmoid probability of "complete" (the graph ends in a Sigmoid; Pipecat thresholds it at 0.5).
``tests/test_acoustic_turn.py`` pins figures from transformers' ``WhisperFeatureExtractor`` run
that way; ours matched every feature to 1e-5.
"""

import dataclasses
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np

from parley.core.logmel import N_MELS, SAMPLE_RATE, LogMelSpectrogram, frame_count
from parley.core.turn_text import log_odds, transcript_sounds_unfinished

log = logging.getLogger("parley.core.acoustic_turn")

WINDOW_SECONDS = 8
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
"""The model reads exactly this much audio: the most recent 8 s, zero-padded on the left."""
NORMALISE_EPSILON = 1e-7
"""Added to the window's variance before normalising, as transformers' Whisper extractor does."""
MODEL_RELATIVE_PATH = ("smart-turn-v3.2", "smart-turn-v3.2-cpu.onnx")
"""Where ``parley models fetch`` puts the model under the models directory."""


class AcousticTurnInputError(ValueError):
    """Audio the end-of-turn model cannot score."""


class AcousticTurnConfigError(ValueError):
    """Settings or a model file the acoustic end-of-turn stage cannot work with."""


@dataclass(frozen=True)
class AcousticTurnSettings:
    """How the acoustic end-of-turn stage decides and how hard it works; defaults sit by each field."""

    threshold: float = 0.9
    """p(complete) at or above which a verdict says "complete" (Pipecat uses 0.5, the model's own
    decision point); with a words model, ``text_threshold`` decides instead. Without one, on the
    evaluation set (scripts/evaluate_turn_taking.py --acoustic-only), asked after 100 ms of silence
    with a 900 ms hangover and the string rules as a veto, 0.9 ended 37 % of complete turns early
    (median 900 ms) and cut 20 of 100 mid-sentence pauses. Smart Turn ranks finished above
    unfinished turns with AUC 0.70 on recorded speech and 0.52 on synthesized speech."""
    action_delay_ms: int = 200
    """Silence the VAD must see before the endpointer asks for a verdict: scoring while the
    caller is still talking wastes compute and the model was trained on audio that ends in a pause."""
    min_audio_ms: int = 250
    """Shorter requests are answered "not scored" at once: the action delay plus a syllable.
    The model calls silence, or nothing at all, "complete" (p 0.99), so it must not see bare pauses."""
    text_threshold: float = -1.5
    """With a words model: the log-odds at or above which ``log_odds(p_words) + smart_turn_weight *
    log_odds(p_smart_turn)`` says "complete" (-1.5 is p_words 0.18). On the evaluation set
    (scripts/evaluate_turn_taking.py --acoustic-only: 252 complete turns, 100 mid-sentence pauses,
    asked after 100 ms of silence, else the 900 ms hangover; each turn read after the agent's
    line before it), with the second reading at the end of speech: -2.0 ends 68 % of complete
    turns early and cuts 9 % of the pauses, -1.5 61 % and 5 %, -1.25 55 % and 3 %. It is what
    5-fold cross-validation over the set's 63 source sentences chose (the fewest cuts with at
    least 57 % of the training folds' complete turns ended early): weight 0 in every fold, -1.5
    in three, -1.625 and -1.25 in the others. On the folds held out its choices ended 58.7 % of
    complete turns early and cut 6 of 100 pauses; read once only, 58.3 % and 11."""
    smart_turn_weight: float = 0.0
    """How much Smart Turn's log-odds count beside the words'; at 0 (the default) Smart Turn is not
    run when a words model is there. Smart Turn ranks complete turns above mid-sentence pauses
    with AUC 0.57 on the evaluation set (the words model: 0.84), and cross-validation chose 0 in
    every fold. It was trained on real callers and the set is three quarters synthesized speech;
    on the recorded quarter every weight from 0 to 0.5 did as well."""
    reread_at_speech_end: bool = True
    """With a words model: before a "complete" stands, transcribe the turn again up to the end of
    speech (without the pause's silence) and require that reading to say "complete" too. On the
    evaluation set at the shipped weight and threshold it halves the pauses cut (11 -> 5 of 100)
    for 2.4 points of complete turns ended early (63.5 -> 61.1 %); it costs a second STT job and
    reading, only when the first reading says "complete"."""
    concurrent_readings: bool = False
    """Transcribe the words up to the end of speech at once, beside the first reading, instead of
    after it says "complete": the verdict then waits for the slower transcription, not for both
    in turn. Worth it only where the STT service has a second worker free (on one, the two jobs
    queue anyway, and the second is wasted whenever the first reading says "not yet")."""
    max_batch: int = 8
    """Pending requests from different calls scored together in one model run."""
    intra_op_threads: int = 1
    """onnxruntime threads per model run: 1 leaves the other cores to the audio loop and STT."""

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise AcousticTurnConfigError(f"threshold must lie strictly between 0 and 1, got {self.threshold!r}")
        if self.action_delay_ms < 0:
            raise AcousticTurnConfigError(f"action_delay_ms must be 0 or more, got {self.action_delay_ms!r}")
        if not 0 <= self.min_audio_ms <= WINDOW_SECONDS * 1000:
            raise AcousticTurnConfigError(f"min_audio_ms must lie in 0..{WINDOW_SECONDS * 1000}, got {self.min_audio_ms!r}")
        if not math.isfinite(self.text_threshold):
            raise AcousticTurnConfigError(f"text_threshold must be a number, got {self.text_threshold!r}")
        if not (math.isfinite(self.smart_turn_weight) and self.smart_turn_weight >= 0):
            raise AcousticTurnConfigError(f"smart_turn_weight must be 0 or more, got {self.smart_turn_weight!r}")
        if self.max_batch < 1:
            raise AcousticTurnConfigError(f"max_batch must be 1 or more, got {self.max_batch!r}")
        if self.intra_op_threads < 1:
            raise AcousticTurnConfigError(f"intra_op_threads must be 1 or more, got {self.intra_op_threads!r}")

    @property
    def min_audio_samples(self):
        return self.min_audio_ms * SAMPLE_RATE // 1000


def smart_turn_features(audio_16k, log_mel, out=None):
    """Smart Turn's input ``[80, 800]`` for 16 kHz float audio, as the reference pipeline makes it.

    The last 8 s, left-padded with zeros, normalised over the whole padded window, then
    ``log_mel`` (a ``LogMelSpectrogram``): what smart-turn's ``inference.py`` gets from
    ``truncate_audio_to_last_n_seconds`` and ``WhisperFeatureExtractor(chunk_length=8)``.
    """
    audio = np.asarray(audio_16k)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise AcousticTurnInputError(
            f"audio must be 1-D float samples in [-1, 1] at 16 kHz, got {audio.dtype} {audio.shape}: "
            "convert PCM16 with parley.core.codecs.pcm16_to_float32 first"
        )
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float64)
    recent = audio[-WINDOW_SAMPLES:]
    if recent.size:
        window[-recent.size:] = recent
    if not np.isfinite(window).all():
        raise AcousticTurnInputError("audio holds NaN or infinite samples: replace them before scoring")
    window -= window.mean()
    window /= np.sqrt(window.var() + NORMALISE_EPSILON)
    return log_mel(window, out)


class SmartTurnModel:
    """Smart Turn v3.2 through onnxruntime: 16 kHz audio in, p(turn complete) out."""

    def __init__(self, model_path, providers=None, intra_op_threads=1):
        import onnxruntime as ort

        from parley.appliance.accel import onnx_providers

        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} not found: run `parley models fetch`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers or onnx_providers())
        except Exception as exc:
            raise AcousticTurnConfigError(f"{model_path} does not load ({exc}): run `parley models fetch` to restore it") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ["input_features"] or list(inputs[0].shape[1:]) != [N_MELS, frame_count(WINDOW_SAMPLES)]:
            raise AcousticTurnConfigError(
                f"{model_path} is not a Smart Turn v3 model: expected one input input_features [batch, 80, 800], "
                f"got {[(i.name, i.shape) for i in inputs]}; run `parley models fetch` to restore it"
            )
        self.output_name = outputs[0].name
        self.log_mel = LogMelSpectrogram()

    @classmethod
    def from_models_dir(cls, models_dir, providers=None, intra_op_threads=1):
        """The fetched model under the appliance's models directory."""
        return cls(Path(models_dir).joinpath(*MODEL_RELATIVE_PATH), providers, intra_op_threads)

    @property
    def providers(self):
        return self.session.get_providers()

    def features(self, audio_16k, out=None):
        """The model's input ``[80, 800]`` for one stretch of 16 kHz float audio (any length, even empty)."""
        return smart_turn_features(audio_16k, self.log_mel, out)

    def score(self, audio_16k):
        """p(turn complete) for the caller audio ending now."""
        return self.score_batch([audio_16k])[0]

    def score_batch(self, audios_16k):
        """p(turn complete) for several calls in one model run, in order."""
        if not audios_16k:
            return []
        batch = np.empty((len(audios_16k), N_MELS, frame_count(WINDOW_SAMPLES)), np.float32)
        for features, audio in zip(batch, audios_16k):
            self.features(audio, features)
        (probabilities,) = self.session.run([self.output_name], {"input_features": batch})
        return [float(p) for p in probabilities[:, 0]]


@dataclass(frozen=True, slots=True)
class AcousticTurnVerdict:
    """What the model made of one request."""

    probability: float
    """p(turn complete); NaN when the audio was not scored."""
    complete: bool
    """``probability >= threshold``; False when not scored, so the endpointer falls back to silence timing."""
    sample: int
    """The caller's sample position the request was made at, to tell a fresh verdict from a stale one."""
    compute_ms: float
    """Wall time of the model run (features included) that produced it; 0 when not scored."""
    batch_size: int = 1
    """Requests scored in that run: they shared ``compute_ms``."""
    not_scored: str = ""
    """Why the audio was not scored (too short, wrong type, model failure); empty when it was."""
    transcript: str | None = None
    """The words so far, when the stage heard them (a transcriber, and a words model or a "complete")."""
    text_probability: float = float("nan")
    """The words model's p(the caller's message can end here); NaN without one."""
    speech_end_transcript: str | None = None
    """The words heard up to the end of speech, when the first reading said "complete"
    (``reread_at_speech_end``)."""
    speech_end_probability: float = float("nan")
    """The words model's reading of ``speech_end_transcript``; NaN when there was none."""


def words_say_complete(text, p_text, p_smart_turn, settings):
    """One reading's verdict with a words model: the string rules may not say "unfinished", and
    ``log_odds(p_text) + smart_turn_weight * log_odds(p_smart_turn)`` must reach ``text_threshold``
    (Smart Turn's term left out at weight 0, where it may not have been run)."""
    if transcript_sounds_unfinished(text):
        return False
    weight = settings.smart_turn_weight
    weighed = log_odds(p_text) + (weight * log_odds(p_smart_turn) if weight else 0.0)
    return weighed >= settings.text_threshold


@dataclass(slots=True)
class _Request:
    ticket: int
    call_key: object
    audio: np.ndarray
    sample: int
    turn_samples: int
    silence_samples: int
    agent_line: str | None


class AcousticTurnStage:
    """Smart Turn scoring beside the real-time loop: requests in, verdicts out, nothing waits.

    One request per call is outstanding at a time: a newer request supersedes an older one that
    is still queued, and the verdict of one already being scored is dropped when it lands.
    ``model`` is anything with ``score_batch(list of 16 kHz float32 arrays) -> list of floats``;
    ``transcriber``, if given, anything with ``transcribe(16 kHz float32 array) -> str`` (and
    optionally ``close()``, called by ``join``);
    ``text_model``, used only with a transcriber, anything with ``p_complete(text, agent_line) -> float``
    (``agent_line`` None when the call's is not known: ``set_agent_line``).
    """

    def __init__(self, model, settings=None, transcriber=None, text_model=None):
        self.settings = settings or AcousticTurnSettings()
        self._model = model
        self._transcriber = transcriber
        self._text_model = text_model if transcriber is not None else None
        self._tickets = count(1)
        self._latest = {}
        self._pending = {}
        self._ready = {}
        self._agent_lines = {}
        self._in_flight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._worker = threading.Thread(target=self._run, name="acoustic-turn", daemon=True)
        self._rereader = (ThreadPoolExecutor(1, thread_name_prefix="acoustic-turn-reread")
                          if self._text_model is not None and self.settings.concurrent_readings else None)
        self._worker.start()

    @classmethod
    def from_models_dir(cls, models_dir, settings=None, providers=None, transcriber=None, text_model=None):
        """A stage over the fetched Smart Turn model, with ``settings.intra_op_threads``."""
        settings = settings or AcousticTurnSettings()
        return cls(SmartTurnModel.from_models_dir(models_dir, providers, settings.intra_op_threads), settings,
                   transcriber, text_model)

    def request(self, call_key, audio_16k, sample, turn_samples=None, silence_samples=0):
        """Ask for a verdict on ``audio_16k`` (the call's recent audio, ending at ``sample``); returns at once.

        ``turn_samples``: how much of its end is the caller's current turn, the part the
        transcriber hears (all of it when None); ``silence_samples``: how much of its end is the
        pause after the last speech (0 when not known: no second reading at the end of speech).
        The last 8 s are copied, so the caller may reuse its buffer. Audio that cannot be scored
        gets a "not scored" verdict instead of an exception: the loop must never fall over.
        """
        audio = np.asarray(audio_16k)
        problem = self._problem(audio)
        with self._cond:
            if self._closed:
                return
            self._ready.pop(call_key, None)
            if not problem:
                ticket = next(self._tickets)
                self._latest[call_key] = ticket
                kept = np.array(audio[-WINDOW_SAMPLES:], dtype=np.float32)
                turn = kept.size if turn_samples is None else max(1, min(int(turn_samples), kept.size))
                silence = max(0, min(int(silence_samples), turn - 1))
                self._pending[call_key] = _Request(ticket, call_key, kept, sample, turn, silence,
                                                   self._agent_lines.get(call_key))
                self._cond.notify_all()
                return
            self._latest.pop(call_key, None)
            self._pending.pop(call_key, None)
            self._ready[call_key] = AcousticTurnVerdict(float("nan"), False, sample, 0.0, 0, problem)
        log.warning("acoustic_turn_not_scored call_key=%s sample=%s reason=%s", call_key, sample, problem)

    def set_agent_line(self, call_key, line):
        """What the agent last said on the call, as the caller heard it: the words model reads the
        caller's words as a reply to it from the next request on."""
        with self._cond:
            self._agent_lines[call_key] = line

    def forget(self, call_key):
        """The call is over: ``cancel`` it and drop its agent line."""
        self.cancel(call_key)
        with self._cond:
            self._agent_lines.pop(call_key, None)

    def poll(self, call_key):
        """The verdict for the call's latest request once it is there (handed out once), else None."""
        with self._cond:
            return self._ready.pop(call_key, None)

    def cancel(self, call_key):
        """Forget the call's outstanding request and verdict: the caller spoke again, or hung up."""
        with self._cond:
            self._latest.pop(call_key, None)
            self._pending.pop(call_key, None)
            self._ready.pop(call_key, None)

    def wait_idle(self, timeout=None):
        """Block until nothing is queued or being scored (for shutdown and tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)

    def close(self):
        """Take no more requests and drop queued ones; returns at once, the run in progress ends on its own."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    def join(self, timeout=None):
        """Wait for the worker to end after ``close``, then close the transcriber when it has a
        ``close()``; False on timeout."""
        self._worker.join(timeout)
        if self._rereader is not None:
            self._rereader.shutdown(wait=False, cancel_futures=True)
        close_transcriber = getattr(self._transcriber, "close", None)
        if close_transcriber is not None:
            close_transcriber()
        return not self._worker.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        self.join()

    def _problem(self, audio):
        if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
            return f"audio must be 1-D float samples at 16 kHz, got {audio.dtype} {audio.shape}"
        if audio.size < self.settings.min_audio_samples:
            return f"audio too short: {audio.size} samples, need {self.settings.min_audio_samples} (min_audio_ms)"
        return ""

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                batch = []
                while self._pending and len(batch) < self.settings.max_batch:
                    batch.append(self._pending.pop(next(iter(self._pending))))
                self._in_flight = len(batch)
            verdicts = self._score(batch)
            with self._cond:
                for request, verdict in zip(batch, verdicts):
                    if self._latest.get(request.call_key) == request.ticket:
                        del self._latest[request.call_key]
                        self._ready[request.call_key] = verdict
                self._in_flight = 0
                self._cond.notify_all()

    def _score(self, batch):
        """Verdicts for one batch; a model failure becomes "not scored" verdicts, never a dead worker."""
        for request in batch:
            np.nan_to_num(request.audio, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if self._text_model is not None and self.settings.smart_turn_weight == 0:
            # Smart Turn's reading would not count: the words alone decide.
            return [self._with_transcript(r, AcousticTurnVerdict(float("nan"), False, r.sample, 0.0, len(batch)))
                    for r in batch]
        started = time.perf_counter()
        try:
            probabilities = self._model.score_batch([request.audio for request in batch])
        except Exception as exc:
            log.exception("acoustic_turn_failed requests=%d", len(batch))
            return [AcousticTurnVerdict(float("nan"), False, r.sample, 0.0, len(batch), f"model failed: {exc!r}") for r in batch]
        compute_ms = (time.perf_counter() - started) * 1000.0
        log.debug("acoustic_turn_scored p=%s compute_ms=%.0f", [round(float(p), 2) for p in probabilities], compute_ms)
        threshold = self.settings.threshold
        verdicts = []
        for request, p in zip(batch, probabilities):
            verdict = AcousticTurnVerdict(p, p >= threshold, request.sample, compute_ms, len(batch))
            if self._text_model is not None or (verdict.complete and self._transcriber is not None):
                verdict = self._with_transcript(request, verdict)
            verdicts.append(verdict)
        return verdicts

    def _with_transcript(self, request, verdict):
        """The verdict once the words so far are heard (and read, with a words model). A
        transcriber or words model that fails leaves the turn to silence timing."""
        with self._cond:
            superseded = self._latest.get(request.call_key) != request.ticket
        if superseded:
            return verdict  # nobody will read it: spare the transcriber
        started = time.perf_counter()
        turn = request.audio[-request.turn_samples:]
        p_text = p_end = first_ms = float("nan")
        end_text = None
        at_speech_end = turn[:-request.silence_samples] if request.silence_samples else None
        reread = self._text_model is not None and self.settings.reread_at_speech_end and at_speech_end is not None
        early = (self._rereader.submit(self._transcriber.transcribe, at_speech_end)
                 if reread and self._rereader is not None else None)
        try:
            text = self._transcriber.transcribe(turn)
            if self._text_model is None:
                complete = not transcript_sounds_unfinished(text)
            else:
                p_text = self._text_model.p_complete(text, request.agent_line)
                complete = words_say_complete(text, p_text, verdict.probability, self.settings)
                if complete and reread:
                    first_ms = (time.perf_counter() - started) * 1000.0
                    end_text = early.result() if early else self._transcriber.transcribe(at_speech_end)
                    p_end = self._text_model.p_complete(end_text, request.agent_line)
                    complete = words_say_complete(end_text, p_end, verdict.probability, self.settings)
        except TimeoutError as exc:
            # A busy machine, not a fault: the hangover ends this turn, as it would have by now.
            log.info("acoustic_turn_words_late call_key=%s error=%r", request.call_key, exc)
            return dataclasses.replace(verdict, complete=False, not_scored=f"words late: {exc}")
        except Exception as exc:
            log.warning("acoustic_turn_words_failed call_key=%s error=%r", request.call_key, exc)
            return dataclasses.replace(verdict, complete=False, not_scored=f"words failed: {exc!r}")
        compute_ms = verdict.compute_ms + (time.perf_counter() - started) * 1000.0
        log.debug("acoustic_turn_words call_key=%s p=%.2f words=%r p_words=%.3f speech_end_words=%r p_end=%.3f "
                  "complete=%s first_reading_ms=%.0f compute_ms=%.0f after=%r", request.call_key, verdict.probability,
                  text, p_text, end_text, p_end, complete, first_ms, compute_ms, request.agent_line)
        return dataclasses.replace(verdict, complete=complete, compute_ms=compute_ms, transcript=text,
                                   text_probability=p_text, speech_end_transcript=end_text,
                                   speech_end_probability=p_end)
