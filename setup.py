"""Builds the Cython extensions of parley.core; everything else is in pyproject.toml.

Two kinds of source, both compiled: hand-written ``core/*.pyx`` byte loops, and
``core/_<name>_c.py`` state machines, each a symlink to the plain-Python twin
``_<name>_py.py`` given C types by ``_<name>_c.pxd`` (Cython's pure-Python mode).
"""

from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCES = sorted(Path("core").glob("*.pyx")) + sorted(Path("core").glob("_*_c.py"))
EXTENSIONS = [
    Extension(f"parley.core.{source.stem}", [str(source)], include_dirs=[numpy.get_include()])
    for source in SOURCES
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
