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
    S seconds for a cancel; ``fail`` raises. Anything else is spoken as its own bytes.
    """

    service = "tts"

    def handle(self, message, audio):
        command, _, argument = message.body["text"].partition(":")
        if command == "sleep":
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
