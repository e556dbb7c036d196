"""Turn-taking: when the caller starts and stops a turn, from per-frame speech decisions.

The compiled endpointer ``_endpointer_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_endpointer_py`` (the same source, interpreted).
"""

from dataclasses import dataclass, fields
from enum import IntEnum

from parley.core import _endpointer_py
from parley.core._implementation import choose

_impl, COMPILED = choose("_endpointer_c", "_endpointer_py")


class EndpointerSettingsError(ValueError):
    """Turn-taking settings that cannot work together; the message says which to change."""


@dataclass(frozen=True)
class EndpointerSettings:
    """Turn-taking timings in milliseconds; an agent file may override any of them."""

    min_speech_ms: int = 200
    """Unbroken speech needed before a turn starts, so a cough, a click or a breath is not a turn."""
    hangover_ms: int = 700
    """Trailing silence that ends the turn when nothing else has: the dead air a caller waits."""
    max_turn_ms: int = 30_000
    """A turn this long is cut, so a caller reading a long number or an open line cannot stall the agent."""
    pre_roll_ms: int = 300
    """Audio kept before speech start for STT, so the first syllable (under the VAD's onset) is heard."""
    short_silence_ms: int = 200
    """Silence after which the acoustic end-of-turn model scores the turn and may end it early."""

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int:
                raise EndpointerSettingsError(f"{field.name} must be a whole number of milliseconds, not {value!r}")
            if value < 0 or (value == 0 and field.name != "pre_roll_ms"):
                raise EndpointerSettingsError(f"{field.name} must be more than 0 ms, not {value}")
        if self.short_silence_ms >= self.hangover_ms:
            raise EndpointerSettingsError(
                f"short_silence_ms ({self.short_silence_ms}) must be below hangover_ms ({self.hangover_ms}), "
                "or the acoustic end-of-turn stage never gets a chance to end the turn early")
        if self.max_turn_ms <= self.min_speech_ms + self.hangover_ms:
            raise EndpointerSettingsError(
                f"max_turn_ms ({self.max_turn_ms}) must exceed min_speech_ms + hangover_ms "
                f"({self.min_speech_ms + self.hangover_ms}): raise it to at least several seconds")


class EndpointEvent(IntEnum):
    """The codes ``Endpointer.feed`` returns; the event's sample is in ``event_sample``.

    The values are read from the twin: compiled, they are C constants Python cannot see.
    """

    NO_EVENT = _endpointer_py.NO_EVENT
    SPEECH_START = _endpointer_py.SPEECH_START
    """The turn began; ``event_sample`` is the start of its first speech frame."""
    SHORT_SILENCE = _endpointer_py.SHORT_SILENCE
    """The caller paused for ``short_silence_ms``: time to ask the acoustic end-of-turn model."""
    END_OF_TURN = _endpointer_py.END_OF_TURN
    """The turn is over; ``event_sample`` is when that was decided, ``speech_end_sample`` when speech stopped."""
    MAX_TURN_REACHED = _endpointer_py.MAX_TURN_REACHED
    """The turn ran for ``max_turn_ms`` and was cut; treat it as an end of turn."""


class EndpointerState(IntEnum):
    """Where the endpointer is between turns (``Endpointer.state``)."""

    IDLE = _endpointer_py.IDLE
    MAYBE_SPEECH = _endpointer_py.MAYBE_SPEECH
    SPEECH = _endpointer_py.SPEECH
    TRAILING_SILENCE = _endpointer_py.TRAILING_SILENCE


Endpointer = _impl.Endpointer
