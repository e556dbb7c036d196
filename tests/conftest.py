"""Shared fixtures: both codec implementations, and the fetched models (skip when absent)."""

import importlib
import os

import pytest

from parley.appliance.config import load_settings


def twin_or_compiled(request, twin, compiled):
    """For a fixture with ``params=["py", "c"]``: ``parley.core.<twin>``, or ``<compiled>``
    (skipped when PARLEY_NO_EXTENSIONS=1 forces pure Python), so both run the same tests."""
    if request.param == "py":
        return importlib.import_module(f"parley.core.{twin}")
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    return importlib.import_module(f"parley.core.{compiled}")


@pytest.fixture(params=["py", "c"])
def g711(request):
    """The plain-Python twin and the compiled codec."""
    return twin_or_compiled(request, "_g711_py", "_g711")


@pytest.fixture(scope="session")
def models_dir():
    return load_settings().models_dir


def fetched(models_dir, *relative):
    """The path of a fetched model file, or skip with what to run."""
    path = models_dir.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"{path} is not fetched: run `parley models fetch --for test`")
    return path
