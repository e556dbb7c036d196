"""The RTP jitter buffer: decoded packets in, in any order and at any time; one frame per playout
tick out, in order, with losses concealed and the depth adapted to the network.

The compiled buffer ``_jitter_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_jitter_py`` (the same source, interpreted); how it plays is described there.
``JitterBuffer(settings, frame_samples, clock_rate)``: ``put(seq, timestamp, payload,
arrival_ns) -> bool``, ``pop_into(out) -> FrameKind`` value, statistics as attributes.
"""

from dataclasses import dataclass, fields
from enum import IntEnum

from parley.core import _jitter_py
from parley.core._implementation import choose

_impl, COMPILED = choose("_jitter_c", "_jitter_py")

MAX_DEPTH_FRAMES = 50
"""No setting may ask for more than a second of 20 ms frames: delay hurts a call more than loss."""


class JitterSettingsError(ValueError):
    """Jitter-buffer settings that cannot work together; the message says which to change."""


@dataclass(frozen=True)
class JitterSettings:
    """How much delay the buffer may add to ride out network jitter, in frames (20 ms each for G.711)."""

    min_depth_frames: int = 2
    """Delay kept even on a calm network: 40 ms absorbs ordinary scheduling and LAN jitter."""
    max_depth_frames: int = 10
    """Most delay the buffer adds, 200 ms: past that a conversation suffers more from delay than from loss."""
    fade_frames: int = 3
    """After a lost packet's one repeat, frames over which the repeat fades to silence (60 ms)."""
    shrink_after_frames: int = 250
    """Calm frames (5 s) before the depth comes down one frame: grow fast, shrink slowly."""

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 0:
                raise JitterSettingsError(f"{field.name} must be a whole number of frames >= 0, not {value!r}")
        if not self.min_depth_frames <= self.max_depth_frames <= MAX_DEPTH_FRAMES:
            raise JitterSettingsError(
                f"need min_depth_frames ({self.min_depth_frames}) <= max_depth_frames ({self.max_depth_frames}) "
                f"<= {MAX_DEPTH_FRAMES}: lower min_depth_frames or raise max_depth_frames")
        if self.shrink_after_frames == 0:
            raise JitterSettingsError("shrink_after_frames must be at least 1, or the depth drops back on every frame")


class FrameKind(IntEnum):
    """What ``JitterBuffer.pop_into`` wrote. The values are read from the twin: compiled, they
    are C constants Python cannot see."""

    NORMAL = _jitter_py.NORMAL
    """The packet's own audio."""
    CONCEALED = _jitter_py.CONCEALED
    """The packet is missing: the last good frame repeated, or fading out."""
    SILENCE = _jitter_py.SILENCE
    """Nothing to play: before the stream starts, or after a concealment has faded out."""


JitterBuffer = _impl.JitterBuffer
