"""Which implementation of a core module runs: the compiled one, or its plain-Python twin when
``PARLEY_NO_EXTENSIONS=1`` asks for it.

A pure-mode module's ``.py`` source sits beside its extension; if the extension is missing the
import would silently run the source instead, so that is refused (aiohttp's lesson).
"""

import importlib
import importlib.machinery
import os


def choose(compiled_name, twin_name):
    """``(module, compiled)`` for ``parley.core.<compiled_name>`` or its twin ``<twin_name>``."""
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        return importlib.import_module(f"parley.core.{twin_name}"), False
    module = importlib.import_module(f"parley.core.{compiled_name}")
    if not module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        raise ImportError(f"parley.core.{compiled_name} is not compiled: run `make setup` (or `python setup.py "
                          f"build_ext --inplace`), or set PARLEY_NO_EXTENSIONS=1 for the plain-Python twin")
    return module, True
