"""Silero VAD v6 through onnxruntime: the accurate second opinion on frames the cheap detector
is unsure of.

One session serves every call; each call keeps its own ``SileroStream`` (the recurrent state
and the context samples Silero prepends to each window). ``score_batch`` scores several calls'
windows in one onnxruntime run, which costs far less than one run per call when many calls
speak at once.
"""

from pathlib import Path

import numpy as np

WINDOW = {16000: 512, 8000: 256}
"""Samples per scored window at each supported rate (32 ms)."""
CONTEXT = {16000: 64, 8000: 32}
"""Samples of the previous window that Silero sees in front of each new one."""
STATE_SHAPE = (2, 1, 128)
"""The recurrent state of one stream, as the model takes it ([2, batch, 128])."""
SPEECH_THRESHOLD = 0.5
"""Silero's own threshold to start speech."""
SILENCE_THRESHOLD = 0.35
"""Silero's own threshold to end speech (start threshold less 0.15)."""


class SileroStream:
    """One call's place in Silero's recurrent computation."""

    __slots__ = ("sample_rate", "state", "input", "_sr")

    def __init__(self, sample_rate):
        if sample_rate not in WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}; resample first")
        self.sample_rate = sample_rate
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.input = np.zeros((1, CONTEXT[sample_rate] + WINDOW[sample_rate]), dtype=np.float32)
        """The model's input row: context, then the window being scored."""
        self._sr = np.array(sample_rate, dtype=np.int64)

    @property
    def window_size(self):
        return WINDOW[self.sample_rate]

    def reset(self):
        """Forget everything heard: a new call, or a stretch too long ago to carry on from."""
        self.state.fill(0.0)
        self.input.fill(0.0)

    def _load(self, window):
        context = CONTEXT[self.sample_rate]
        samples = np.asarray(window, dtype=np.float32).reshape(-1)
        if samples.shape[0] != self.input.shape[1] - context:
            raise ValueError(f"a Silero window at {self.sample_rate} Hz has {self.window_size} samples, "
                             f"not {samples.shape[0]}")
        row = self.input[0]
        row[context:] = samples
        if not np.isfinite(row[context:]).all():
            np.nan_to_num(row, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def _advance(self):
        context = CONTEXT[self.sample_rate]
        row = self.input[0]
        row[:context] = row[-context:]


class SileroVad:
    """The Silero VAD v6 model, shared by all calls."""

    def __init__(self, model_path, providers=None, threads=1):
        import onnxruntime as ort

        from parley.appliance.accel import onnx_providers

        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} is not fetched: run `parley models fetch --for test`")
        options = ort.SessionOptions()
        # One small window per run: more threads only add synchronisation on a busy box.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options,
                                            providers=providers or onnx_providers())

    def new_stream(self, sample_rate=16000):
        """A fresh per-call state at ``sample_rate`` (8000 or 16000)."""
        return SileroStream(sample_rate)

    def score(self, stream, window):
        """Speech probability of ``window`` (``stream.window_size`` samples, following on from
        the previous window scored on this stream); advances the stream. Non-finite samples
        count as silence so a corrupt frame cannot poison the state."""
        stream._load(window)
        prob, state = self.session.run(None, {"input": stream.input, "state": stream.state, "sr": stream._sr})
        stream.state = state
        stream._advance()
        return float(prob[0, 0])

    def score_batch(self, streams, windows):
        """``score`` for several streams (all at one rate) in one onnxruntime run."""
        if not streams:
            return np.zeros(0, dtype=np.float32)
        if len(streams) != len(windows):
            raise ValueError(f"{len(streams)} streams but {len(windows)} windows")
        rates = {stream.sample_rate for stream in streams}
        if len(rates) > 1:
            raise ValueError(f"streams at {sorted(rates)} Hz cannot share one batch: batch them per rate")
        for stream, window in zip(streams, windows):
            stream._load(window)
        inputs = np.concatenate([stream.input for stream in streams], axis=0)
        states = np.concatenate([stream.state for stream in streams], axis=1)
        probs, states = self.session.run(None, {"input": inputs, "state": states, "sr": streams[0]._sr})
        for i, stream in enumerate(streams):
            stream.state = np.ascontiguousarray(states[:, i:i + 1, :])
            stream._advance()
        return probs[:, 0].astype(np.float32)


class ReplayedSilero:
    """Silero's probabilities from an earlier run, given back in order: a loop fed the same frames
    takes the very same path (the same decisions, the same events) at none of Silero's cost. For
    benchmarks and instruction counts that want the rest of the loop alone."""

    def __init__(self, silero, probabilities):
        self.silero, self.probabilities, self.next = silero, probabilities, 0

    def new_stream(self, sample_rate=16000):
        return self.silero.new_stream(sample_rate)

    def score(self, stream, window):
        self.next += 1
        return self.probabilities[self.next - 1]


class RecordedSilero(ReplayedSilero):
    """Silero itself, keeping each probability it gives (for a later ``ReplayedSilero``)."""

    def score(self, stream, window):
        self.probabilities.append(self.silero.score(stream, window))
        return self.probabilities[-1]
