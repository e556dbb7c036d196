"""Stand-in workers that the bus tests run as real processes (no tests in this module).

Importable as ``bus_stand_ins`` by the worker interpreters: the tests put this folder on
their PYTHONPATH.
"""

import hashlib
import os
import time

from parley.appliance.bus import Worker


class ScriptedSpeech(Worker):
    """A TTS worker whose text says what to do, standing in for a model in the bus tests.

    ``sleep:S`` blocks S seconds, deaf to cancel (a native call); ``spin:S`` burns the CPU in
    Python for S seconds (holding the GIL); ``until-cancel:S`` sends one chunk, then waits up to
    S seconds for a cancel; ``fail`` raises. ``then-idle:S`` ends at once and leaves work that runs
    up to S seconds after it (``after_job``), giving way to the next job; ``then-idle-fail`` leaves
    work that raises; ``idle-report`` speaks how the last such work ended. Anything else is spoken
    as its own bytes.
    """

    service = "tts"
    idle_report = "no idle work ran"

    def handle(self, message, audio):
        command, _, argument = message.body["text"].partition(":")
        if command == "then-idle":
            self.after_job(lambda stop: self._idle(float(argument), stop))
            return
        if command == "then-idle-fail":
            self.after_job(lambda stop: 1 / 0)
            return
        if command == "idle-report":
            message.body["text"] = self.idle_report
        elif command == "sleep":
            time.sleep(float(argument))
        elif command == "spin":
            end = time.monotonic() + float(argument)
            while time.monotonic() < end:
                sum(range(1000))
        elif command == "until-cancel":
            yield self.reply(message, "tts_audio", {"sample_rate": 8000, "offset_samples": 0}, audio=b"\0\0")
            self.cancelled.wait(float(argument))
        elif command == "fail":
            raise RuntimeError("scripted failure")
        spoken = message.body["text"].encode().ljust(2 * ((len(message.body["text"].encode()) + 1) // 2), b" ")
        yield self.reply(message, "tts_audio", {"sample_rate": 8000, "offset_samples": 0}, audio=spoken)
        yield self.reply(message, "tts_done", {"samples": len(spoken) // 2})

    def _idle(self, seconds, stop):
        started = time.monotonic()
        while not stop() and time.monotonic() - started < seconds:
            time.sleep(0.005)
        outcome = "gave way" if stop() else "ran out"
        self.idle_report = f"{outcome} after {time.monotonic() - started:.2f} s"


class EchoTranscriber(Worker):
    """An STT worker that 'transcribes' a segment as its length and sha256, proving the audio arrived intact."""

    service = "stt"

    def handle(self, message, audio):
        yield self.reply(message, "stt_partial", {"text": f"{len(audio)} bytes"})
        yield self.reply(message, "stt_final", {"text": hashlib.sha256(audio).hexdigest()})


class MissingModel(Worker):
    """A worker whose models are missing: it dies during setup, every time."""

    service = "asr"

    def setup(self):
        raise FileNotFoundError(f"models/asr.onnx is not fetched (pid {os.getpid()}): run `parley models fetch`")


class ToneVoice(Worker):
    """A TTS worker that speaks every text as a 440 Hz tone of 20 ms per character, at the rate asked."""

    service = "tts"

    def handle(self, message, audio):
        import numpy as np

        rate = message.body.get("sample_rate", 8000)
        samples = rate * len(message.body["text"]) // 50
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate) * 32767).astype("<i2")
        yield self.reply(message, "tts_audio", {"sample_rate": rate, "offset_samples": 0}, audio=tone.tobytes())
        yield self.reply(message, "tts_done", {"samples": samples})


class FixedTranscript(Worker):
    """An STT worker that hears every turn as the same question."""

    service = "stt"

    def handle(self, message, audio):
        yield self.reply(message, "stt_final", {"text": "Where is my order?"})


class ConfirmingAgent(Worker):
    """An agent worker with one side-effecting tool, as the real one runs it: to a caller's words
    it reads a refund back and waits for the yes (``pending``); to the next words it runs the
    refund (``tool_result`` with the state the tool left), says a long line, and sends its final
    state only ``PARLEY_TEST_STATE_AFTER_S`` later, as a real agent whose state comes after its
    sentences may be beaten by a barge-in."""

    service = "agent"
    READ_BACK = "Shall I refund it?"
    REFUND = {"order_id": "4512", "amount": 49.99}

    def handle(self, message, audio):
        if message.type == "agent_prefill":
            return
        state, caller = message.body["state"], message.body.get("text")
        if caller is None:
            yield self.reply(message, "llm_sentence", {"text": "Hello.", "index": 0})
            entries = [*state["entries"], {"role": "agent", "text": "Hello."}]
            yield self.reply(message, "agent_state", {"state": {**state, "entries": entries}, "action": "listen",
                                                      "kb_chunk_ids": [], "text": "Hello."})
            return
        entries = [*state["entries"], {"role": "caller", "text": caller}]
        if state.get("pending") is None:
            text = self.READ_BACK
            state = {**state, "pending": {"tool": "issue_refund", "arguments": self.REFUND, "read_back": text}}
        else:
            entries += [{"role": "action", "tool": "issue_refund", "arguments": self.REFUND},
                        {"role": "result", "tool": "issue_refund", "arguments": self.REFUND, "status": "ok",
                         "result": {"refund_id": len(entries)}}]
            state = {**state, "pending": None, "entries": entries}
            now = time.monotonic_ns()
            yield self.reply(message, "tool_result", {"name": "issue_refund", "arguments": self.REFUND, "status": "ok",
                                                      "message": "", "confirmed": True, "started_ns": now,
                                                      "ended_ns": now, "result": {"refund_id": len(entries)},
                                                      "state": state})
            text = "Done. " + "The money is on its way back to your card. " * 3
        yield self.reply(message, "llm_sentence", {"text": text, "index": 0})
        if state.get("pending") is None:
            self.cancelled.wait(float(os.environ.get("PARLEY_TEST_STATE_AFTER_S", "0")))
        state = {**state, "entries": [*entries, {"role": "agent", "text": text}]}
        yield self.reply(message, "agent_state", {"state": state, "action": "listen", "kb_chunk_ids": [], "text": text})


class SlowAgent(Worker):
    """An agent worker that greets at once and answers a caller only after ``PARLEY_TEST_AGENT_DELAY_S``
    of work. An ``agent_prefill`` has that work done ahead, after its job, until another job comes (as
    the real one gives way): a turn with the same words then only waits for what is left of it."""

    service = "agent"

    def setup(self):
        self.prefilled = {}
        """(call_id, caller text) -> seconds of the turn's work done ahead."""

    def handle(self, message, audio):
        state = message.body["state"]
        delay = float(os.environ.get("PARLEY_TEST_AGENT_DELAY_S", "0"))
        if message.type == "agent_prefill":
            self.after_job(lambda stop: self._work_ahead((message.call_id, message.body["text"]), delay, stop))
            return
        if "text" not in message.body:
            text = "Hello."
            pause = float(os.environ.get("PARLEY_TEST_GREETING_PAUSE_S", "0"))
            if pause:
                # The greeting's second sentence comes ``pause`` after its first: an LLM slower than speech.
                yield self.reply(message, "llm_sentence", {"text": text, "index": 0})
                self.cancelled.wait(pause)
                text, first = "How can I help?", text
                yield self.reply(message, "llm_sentence", {"text": text, "index": 1})
                yield self.reply(message, "agent_state", {"state": state, "action": "listen", "kb_chunk_ids": [],
                                                          "text": f"{first} {text}"})
                return
        else:
            ahead = self.prefilled.pop((message.call_id, message.body["text"]), 0.0)
            self.cancelled.wait(max(0.0, delay - ahead))
            text = "It has shipped."
        yield self.reply(message, "llm_token", {"text": ""})
        yield self.reply(message, "llm_sentence", {"text": text, "index": 0})
        entries = [*state["entries"], *([{"role": "caller", "text": message.body["text"]}] if "text" in message.body else []),
                   {"role": "agent", "text": text}]
        yield self.reply(message, "agent_state", {"state": {**state, "entries": entries}, "action": "listen",
                                                  "kb_chunk_ids": [], "text": text})

    def _work_ahead(self, key, delay, stop):
        started = time.monotonic()
        while time.monotonic() - started < delay and not stop():
            time.sleep(0.005)
        self.prefilled[key] = time.monotonic() - started


class SwitchboardAgent(Worker):
    """An agent worker that greets, transfers a caller who keys ``0`` (the operator) and answers
    anything else with one line."""

    service = "agent"

    def handle(self, message, audio):
        if message.type == "agent_prefill":
            return
        state = message.body["state"]
        caller = message.body.get("text")
        if caller is None:
            text, action = "Hello.", "listen"
        elif caller == "0":
            text, action = "Putting you through.", "transfer"
        else:
            text, action = "It has shipped.", "listen"
        yield self.reply(message, "llm_sentence", {"text": text, "index": 0})
        entries = [*state["entries"], *([{"role": "caller", "text": caller}] if caller is not None else []),
                   {"role": "agent", "text": text}]
        if action == "transfer":
            yield self.reply(message, "handoff", {"reason": "the caller asked for the operator", "summary": "keyed 0",
                                                  "collected": {}, "transcript": "caller: 0"})
        yield self.reply(message, "agent_state", {"state": {**state, "entries": entries}, "action": action,
                                                  "kb_chunk_ids": [], "text": text})
