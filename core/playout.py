"""Playout: the agent's audio paced out one frame per tick, flushed on barge-in, with what was heard.

The compiled playout ``_playout_c`` runs unless ``PARLEY_NO_EXTENSIONS=1`` asks for its
plain-Python twin ``_playout_py`` (the same source, interpreted).
"""

import importlib.machinery
import os

from parley.core import _playout_py

if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
    _impl = _playout_py
    COMPILED = False
else:
    from parley.core import _playout_c as _impl

    if not _impl.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        # The .py source sits beside the extension: never run it by accident (aiohttp's lesson).
        raise ImportError("parley.core._playout_c is not compiled: run `python setup.py build_ext --inplace`, "
                          "or set PARLEY_NO_EXTENSIONS=1 for the plain-Python twin")
    COMPILED = True

MAX_UTTERANCES = _playout_py.MAX_UTTERANCES
Playout = _impl.Playout
