"""Builds the Cython extensions of parley.core; everything else is in pyproject.toml."""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("parley.core._g711", ["core/_g711.pyx"], include_dirs=[numpy.get_include()]),
]

setup(ext_modules=cythonize(EXTENSIONS, compiler_directives={"language_level": "3"}))
