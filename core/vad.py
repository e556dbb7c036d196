"""Voice activity detection in two stages, per call, per frame.

Stage (a), ``NoiseFloorVad``, runs on every frame for a few microseconds: frame energy in two
bands against each band's tracked noise floor. It answers ``SPEECH``, ``SILENCE`` or ``UNSURE``.
Stage (b), Silero VAD (``parley.core.silero``), is asked only about the frames stage (a) is unsure
of, or about every frame when ``VadSettings.confirm`` is ``"always"``. ``TwoStageVad`` combines
them; ``process_calls`` does the same for many calls with one batched Silero run per tick.

The compiled stage (a) and ``TwoStageVad`` (``_vad_c``) are used unless ``PARLEY_NO_EXTENSIONS=1``
asks for their plain-Python twin (``_vad_py``).
"""

from dataclasses import dataclass

from parley.core._implementation import choose

_impl, COMPILED = choose("_vad_c", "_vad_py")

SILENCE = _impl.SILENCE
SPEECH = _impl.SPEECH
UNSURE = _impl.UNSURE
NoiseFloorVad = _impl.NoiseFloorVad
"""Stage (a): ``NoiseFloorVad(sample_rate=16000, frame_ms=20, settings=None)``;
``process(frame) -> SILENCE | SPEECH | UNSURE``, with ``score`` in [0, 1]."""

CONFIRM_MODES = ("unsure", "always")


class VadConfigError(ValueError):
    """The VAD was set up with something it cannot run with; the message says what to change."""


@dataclass(frozen=True)
class VadSettings:
    """Thresholds of both stages and the policy that combines them."""

    speech_margin_db: float = 11.0
    """Stage (a) says SPEECH when a band is at least this far above its noise floor..."""
    speech_below_peak_db: float = 15.0
    """... and within this of the line's recent speech peak in at least one band (a breath
    or a click on a quiet line is far above the floor but far below the voice)."""
    silence_margin_db: float = 4.0
    """Stage (a) says SILENCE when every band is within this of its noise floor, on a clear line."""
    noisy_silence_margin_db: float = 1.0
    """The same on a noisy line, where weak speech sits just above the floor."""
    clear_line_db: float = 30.0
    """A line whose speech peaks stand this far above the floor is clear."""
    noisy_line_db: float = 15.0
    """A line whose speech peaks stand only this far above the floor is noisy; between the two
    the silence margin is interpolated."""
    peak_decay_db_per_s: float = 3.0
    """How fast each band's tracked speech peak forgets a loud stretch while the line is active
    (it is held through silence), in dB per second."""
    expected_peak_dbfs: float = -25.0
    """The speech peak assumed before the caller has spoken (band energy, dBFS): against it a
    loud floor makes the line noisy from the first frame, a quiet one clear."""
    silence_dbfs: float = -65.0
    """Frames quieter than this (after a 150 Hz high-pass) are silence whatever the floor is."""
    hangover_ms: int = 80
    """SPEECH is held this long after the last clear speech frame, bridging stop closures and
    weak word endings."""
    warmup_ms: int = 100
    """At a call's start the floor is unknown: audible frames are UNSURE for this long."""
    floor_window_ms: int = 1600
    """The noise floor is the quietest frame in this window: long enough to span words."""
    confirm: str = "unsure"
    """When Silero is asked: ``unsure`` (only about UNSURE frames) or ``always`` (accuracy)."""
    silero_speech: float = 0.5
    """Silero probability that starts speech (Silero's own default)."""
    silero_silence: float = 0.35
    """Silero probability below which speech ends (Silero's own: the start threshold less 0.15)."""
    silero_catch_up: int = 4
    """Windows (32 ms each) Silero scores back in time when it is asked again after a pause, so
    its recurrent state has heard the lead-up to the frame in question."""

    def __post_init__(self):
        if self.confirm not in CONFIRM_MODES:
            raise VadConfigError(f"confirm must be one of {CONFIRM_MODES}, not {self.confirm!r}")
        if not 0.0 <= self.silero_silence <= self.silero_speech <= 1.0:
            raise VadConfigError(f"need 0 <= silero_silence ({self.silero_silence}) <= silero_speech "
                                 f"({self.silero_speech}) <= 1")
        if self.silero_catch_up < 0 or self.hangover_ms < 0:
            raise VadConfigError("silero_catch_up and hangover_ms cannot be negative")


TwoStageVad = _impl.TwoStageVad
"""One call's VAD: ``TwoStageVad(silero, sample_rate=16000, frame_ms=20, settings=None)``;
``process(frame) -> bool``, stage (a) on every frame and Silero on the frames (a) is unsure of
(the policy is documented on the class)."""


def process_calls(vads, frames):
    """``TwoStageVad.process`` for many calls' frames of one tick, with one Silero run per
    round of pending windows (per sample rate) instead of one per call; returns the decisions."""
    pending = [vad._prepare(frame) for vad, frame in zip(vads, frames)]
    for rate in {vad.stream.sample_rate for vad in vads}:
        group = [i for i, vad in enumerate(vads) if vad.stream.sample_rate == rate and pending[i]]
        depth = max((len(pending[i]) for i in group), default=0)
        for round_ in range(depth):
            members = [i for i in group if len(pending[i]) > round_]
            silero = vads[members[0]].silero
            probs = silero.score_batch([vads[i].stream for i in members], [pending[i][round_] for i in members])
            for i, prob in zip(members, probs):
                vads[i].silero_prob = float(prob)
    return [vad._finish() for vad in vads]

