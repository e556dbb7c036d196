"""The acoustic end-of-turn stage on a call: the STT worker for the words, SmolLM2 to read them.

One stage serves every call a process holds. At each pause the stage asks the STT worker over the
bus for the words so far and has SmolLM2-135M read them as a reply to what the agent last said
on the call (``parley.core.turn_text``; the call session tells the stage its line); when they
read "complete" (``AcousticTurnSettings.text_threshold``), the words up to the end of speech,
without the pause's silence, are transcribed and read once more, and the turn ends when both
readings agree. On the evaluation set that ends 61 % of complete turns 100 ms after the last word
and cuts 5 of 100 mid-sentence pauses (on the sentences held out in a cross-validation: 58.7 %
and 6), where Smart Turn with a veto from the words waited 900 ms (median) and cut 20
(scripts/evaluate_turn_taking.py --acoustic-only). With this 2-vCPU machine's compute counted in
and two STT workers, the verdict after a complete turn lands at a median 329-364 ms (two runs).
Smart Turn is loaded, but run only when ``smart_turn_weight`` is above 0 or the words model is
missing; then the words only veto its "complete".
"""

import hashlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from parley.appliance.bus import BusClient, Sequencer
from parley.core.acoustic_turn import MODEL_RELATIVE_PATH, AcousticTurnSettings, AcousticTurnStage
from parley.core.turn_text import TurnTextModel, TurnTextModelError

log = logging.getLogger("parley.end_of_turn")

WORDS_WAIT_S = 0.8
"""Longest the stage waits for the words of a pause, unless ``acoustic_stage`` is told the agent's
own (``verdict_wait_s``: the hangover less the short silence). A verdict later than that cannot end
the turn (the hangover has), so the stage moves on to its next request."""
TRANSCRIBE_JOB_TIMEOUT_S = 10.0
"""Longest the STT worker is given for the words themselves. The stage's wait is shorter: words
that come after it still reach the call's head start and the turn, which ask for the same audio
(``SharedTranscripts``), instead of a timeout that would send the turn to transcribe it again."""


def pcm16(audio):
    """Float audio in [-1, 1] as the PCM16 bytes an ``stt_request`` carries."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def words_on_bus(client, request, pcm, timeout=None):
    """The STT worker's words for ``pcm`` (``request`` is its ``stt_request``): (text, stt_final t_ns)."""
    [final] = [reply for reply in client.request("stt", request, pcm, timeout=timeout) if reply.type == "stt_final"]
    return final.body["text"].strip(), final.t_ns


class _Flight:
    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.error = None


class SharedTranscripts:
    """One transcription for the very same audio asked twice: at a pause, the call's head start and
    the end-of-turn check both want the turn so far, and the second asker waits for the first's
    words instead of queueing a second STT job behind it. Remembers the last ``keep`` pieces."""

    def __init__(self, keep=64):
        self.keep = keep
        self._flights = OrderedDict()
        self._lock = threading.Lock()

    def transcribe(self, pcm, run, timeout=None):
        """``run()``'s result for these PCM bytes: run here if nobody asked for them yet, else the
        first asker's (waiting up to ``timeout`` seconds; its error is raised here too)."""
        key = hashlib.blake2b(pcm, digest_size=16).digest()
        with self._lock:
            flight = self._flights.get(key)
            first = flight is None
            if first:
                flight = self._flights[key] = _Flight()
                while len(self._flights) > self.keep:
                    self._flights.popitem(last=False)
        if first:
            try:
                flight.result = run()
            except Exception as exc:
                flight.error = exc
            finally:
                flight.done.set()
        elif not flight.done.wait(timeout):
            raise TimeoutError(f"the same audio's transcription took over {timeout} s")
        if flight.error is not None:
            raise flight.error
        return flight.result


class BusTranscriber:
    """``transcribe(16 kHz float audio) -> str`` by the STT worker, waiting at most ``wait_s``
    seconds (then ``TimeoutError``). With ``shared``, audio a call's head start is transcribing
    already is not transcribed twice. The bus jobs run on ``jobs`` threads of their own, each with
    its bus client, and run to the end (``TRANSCRIBE_JOB_TIMEOUT_S``) after the wait gives up."""

    def __init__(self, endpoints, wait_s=WORDS_WAIT_S, shared=None, jobs=4):
        self.endpoints = endpoints
        self.wait_s = wait_s
        self.shared = shared or SharedTranscripts()
        self._jobs = ThreadPoolExecutor(jobs, thread_name_prefix="end-of-turn-stt")
        self._local = threading.local()
        self._clients = []
        self._lock = threading.Lock()

    def transcribe(self, audio_16k):
        pcm = pcm16(audio_16k)
        job = self._jobs.submit(self.shared.transcribe, pcm, lambda: self._transcribe(pcm), TRANSCRIBE_JOB_TIMEOUT_S)
        try:
            text, _ = job.result(timeout=self.wait_s)
        except TimeoutError:
            job.cancel()  # still queued behind other calls' words: nobody asked for this audio since
            raise TimeoutError(f"the words took over {self.wait_s} s: the hangover ends this turn") from None
        return text

    def _transcribe(self, pcm):
        local = self._local
        if getattr(local, "client", None) is None:
            local.client = BusClient(self.endpoints.clients, name="end-of-turn")
            local.stamp = Sequencer()
            with self._lock:
                self._clients.append(local.client)
        return words_on_bus(local.client, local.stamp.make("stt_request", {"sample_rate": 16000}), pcm,
                            TRANSCRIBE_JOB_TIMEOUT_S)

    def close(self):
        self._jobs.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def acoustic_stage(models_dir, endpoints, shared=None, stt_workers=1, verdict_wait_s=WORDS_WAIT_S):
    """The stage over the fetched Smart Turn model with the STT worker as its transcriber (sharing
    ``shared`` with the calls' head starts) and the words model, or None (logged) when Smart Turn is
    not fetched: turns then end on silence timing alone. Without the words model (not fetched, or
    unreadable; logged) Smart Turn decides and the words only veto its "complete". With more than
    one STT worker, a pause's two readings are transcribed at once (``concurrent_readings``).
    ``verdict_wait_s``: how long after its request a verdict can still end a turn (the agent's
    hangover less its short silence); the stage waits no longer for the words."""
    path = models_dir.joinpath(*MODEL_RELATIVE_PATH)
    if not path.is_file():
        log.warning("acoustic_end_of_turn_off reason=%s is missing (run `parley models fetch`)", path)
        return None
    try:
        text_model = TurnTextModel.from_models_dir(models_dir)
    except (OSError, TurnTextModelError) as exc:
        log.warning("end_of_turn_words_model_off reason=%s", exc)
        text_model = None
    settings = AcousticTurnSettings(concurrent_readings=stt_workers > 1)
    transcriber = BusTranscriber(endpoints, verdict_wait_s, shared)
    return AcousticTurnStage.from_models_dir(models_dir, settings, transcriber=transcriber, text_model=text_model)
