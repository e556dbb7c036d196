"""Playout: the agent's audio paced out one frame per tick, flushed on barge-in, with what was heard.

The compiled playout ``_playout_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_playout_py`` (the same source, interpreted).
"""


from parley.core import _playout_py
from parley.core._implementation import choose

_impl, COMPILED = choose("_playout_c", "_playout_py")

MAX_UTTERANCES = _playout_py.MAX_UTTERANCES
Playout = _impl.Playout
