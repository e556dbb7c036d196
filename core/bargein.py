"""Interruption: whether the caller is really talking over the agent, or the mic hears only echo.

The compiled detector ``_bargein_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_bargein_py`` (the same source, interpreted).
"""

import math
from dataclasses import dataclass, fields

from parley.core import _bargein_py
from parley.core._implementation import choose

_impl, COMPILED = choose("_bargein_c", "_bargein_py")


class BargeInSettingsError(ValueError):
    """Barge-in settings the detector cannot work with; the message says which to change."""


@dataclass(frozen=True)
class BargeInSettings:
    """How sure the detector must be before the agent stops talking; an agent file may override."""

    barge_in_min_ms: int = 160
    """Double talk needed before barge-in: shorter is snappier, longer ignores coughs and "mm-hm"s."""
    bridge_ms: int = 40
    """A dip in double talk this short (a stop consonant, a syllable the echo masks) does not restart the count."""
    max_echo_delay_ms: int = 200
    """Longest echo delay searched: a handset is a few ms, a VoIP path with buffers up to ~150 ms."""
    echo_margin_db: float = 5.0
    """How far the mic must rise above the predicted echo to be the caller: covers the frame-to-frame
    spread of a coloured echo path around its average gain."""
    noise_margin_db: float = 10.0
    """How far the mic must rise above its noise floor, so line noise alone is never a caller."""
    initial_erl_db: float = 6.0
    """Echo return loss assumed before any is learnt: the worst a line should have (G.168)."""

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) not in (int, float) or not math.isfinite(value):
                raise BargeInSettingsError(f"{field.name} must be a number, not {value!r}")
        for name in ("barge_in_min_ms", "bridge_ms", "max_echo_delay_ms"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 0:
                raise BargeInSettingsError(f"{name} must be a whole number of milliseconds >= 0, not {getattr(self, name)!r}")
        if self.barge_in_min_ms == 0:
            raise BargeInSettingsError("barge_in_min_ms must be more than 0 ms, or every echo burst interrupts the agent")
        if self.bridge_ms >= self.barge_in_min_ms:
            raise BargeInSettingsError(
                f"bridge_ms ({self.bridge_ms}) must be below barge_in_min_ms ({self.barge_in_min_ms}), "
                "or gaps could add up to a barge-in")
        if self.echo_margin_db < 0 or self.noise_margin_db < 0:
            raise BargeInSettingsError("echo_margin_db and noise_margin_db must be 0 dB or more")


BargeInDetector = _impl.BargeInDetector
