"""Shared fixtures: both codec implementations, and the fetched models (skip when absent)."""

import importlib
import os

import pytest

from parley.appliance.config import load_settings


@pytest.fixture(params=["py", "c"])
def g711(request):
    """The plain-Python twin and the compiled codec, run through the same tests."""
    if request.param == "py":
        return importlib.import_module("parley.core._g711_py")
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    return importlib.import_module("parley.core._g711")


@pytest.fixture(scope="session")
def models_dir():
    return load_settings().models_dir


def fetched(models_dir, *relative):
    """The path of a fetched model file, or skip with what to run."""
    path = models_dir.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"{path} is not fetched: run `parley models fetch --for test`")
    return path
