"""Builds the Cython extensions of parley.core; everything else is in pyproject.toml.

Two kinds of source, both compiled: hand-written ``core/*.pyx`` byte loops, and
``core/_<name>_c.py`` state machines, each a symlink to the plain-Python twin
``_<name>_py.py`` given C types by ``_<name>_c.pxd`` (Cython's pure-Python mode).
"""

from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# Cython finds a pure-mode module's .pxd under its dotted name (parley/core/_x_c.pxd); the
# sources live in core/, so an include folder maps parley/core onto it.
INCLUDE = Path("build", "cython-include")
(INCLUDE / "parley").mkdir(parents=True, exist_ok=True)
if not (INCLUDE / "parley" / "core").exists():
    (INCLUDE / "parley" / "core").symlink_to(Path("core").resolve(), target_is_directory=True)

SOURCES = sorted(Path("core").glob("*.pyx")) + sorted(Path("core").glob("_*_c.py"))
EXTENSIONS = [
    Extension(f"parley.core.{source.stem}", [str(source)], include_dirs=[numpy.get_include()])
    for source in SOURCES
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False, "cdivision": True},
        include_path=[str(INCLUDE)],
    )
)
