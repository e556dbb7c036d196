"""The local-audio channel: this machine's microphone and speaker as the caller's phone (pyaudio).

For trying an agent at the console. The sound card's clock paces the call: each 20 ms read
from the microphone is one tick of the loop, and the agent's frame goes to the speaker.
"""

import numpy as np

from parley.appliance.media.file_channel import FRAME_MS, CallAudio


class LocalAudioError(RuntimeError):
    """No usable microphone or speaker; the message says what was found."""


class LocalAudio:
    """Blocking 16-bit mono streams at the call's rate on the default devices."""

    def __init__(self, rate):
        import pyaudio

        self.rate = rate
        self.frame = rate * FRAME_MS // 1000
        self._audio = pyaudio.PyAudio()
        try:
            self._audio.get_default_input_device_info()
            self._audio.get_default_output_device_info()
        except OSError as exc:
            count = self._audio.get_device_count()
            self._audio.terminate()
            raise LocalAudioError(f"no default microphone and speaker ({exc}; {count} audio devices seen): "
                                  "plug in a headset, or use `parley call --wav` instead") from None
        self._input = self._audio.open(format=pyaudio.paInt16, channels=1, rate=rate, input=True,
                                       frames_per_buffer=self.frame)
        self._output = self._audio.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True,
                                        frames_per_buffer=self.frame)

    def read(self):
        data = self._input.read(self.frame, exception_on_overflow=False)
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0

    def write(self, samples):
        self._output.write((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())

    def close(self):
        for stream in (self._input, self._output):
            stream.stop_stream()
            stream.close()
        self._audio.terminate()


def run_local_call(session, audio, *, max_seconds=600.0):
    """Talk to ``session`` through ``audio`` until the agent ends the call, Ctrl-C, or ``max_seconds``."""
    caller_frames, agent_frames = [], []
    session.start()
    try:
        for _ in range(int(max_seconds * 1000 / FRAME_MS)):
            frame = audio.read()
            session.feed_pcm(frame)
            out = session.next_frame()
            out = np.zeros(audio.frame, np.float32) if out is None else np.array(out, dtype=np.float32)
            audio.write(out)
            caller_frames.append(frame)
            agent_frames.append(out)
            if session.closed.is_set() and not session.agent_speaking:
                break
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
        audio.close()
    empty = np.zeros(0, np.float32)
    return CallAudio(np.concatenate(caller_frames) if caller_frames else empty,
                     np.concatenate(agent_frames) if agent_frames else empty, audio.rate)
