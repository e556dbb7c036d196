import os
import shutil
import subprocess
import sys

import pytest

from parley.appliance.cli import main
from parley.appliance.config import load_settings
from parley.appliance.doctor import FAIL, PASS, run_checks

FETCHED = load_settings().models_dir


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """An appliance home with the shipped manifest and no model fetched."""
    (tmp_path / "models").mkdir()
    shutil.copy(load_settings().manifest_path, tmp_path / "models" / "manifest.yaml")
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_MODELS", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path


def test_doctor_fails_and_says_what_to_run_when_models_are_missing(empty_home, capsys):
    checks = {c.name: c for c in run_checks(load_settings(), "test")}
    assert checks["whisper-tiny.en"].status == FAIL
    assert "run `parley models fetch --only whisper-tiny.en`" in checks["whisper-tiny.en"].detail
    assert checks["llm-qwen2.5-coder-0.5b"].status == "warn", "a demo-only model is not required for tests"
    twin_only = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"
    assert checks["cython core"].status == ("warn" if twin_only else PASS)
    assert checks["sqlite"].status == PASS
    assert main(["doctor", "--for", "test"]) == 1
    assert "check(s) failed" in capsys.readouterr().out


def test_doctor_reports_a_model_that_is_present_but_broken(empty_home, capsys):
    if not (FETCHED / "silero-vad").is_dir():
        pytest.skip("silero-vad is not fetched: run `parley models fetch --for test`")
    target = empty_home / "models" / "silero-vad"
    shutil.copytree(FETCHED / "silero-vad", target)
    (target / "silero_vad.onnx").write_bytes(b"not an onnx model")
    (check,) = [c for c in run_checks(load_settings(), "test") if c.name == "silero-vad"]
    assert check.status == FAIL and "present but does not load" in check.detail


def test_fetch_of_an_unknown_model_is_a_clear_error(empty_home, capsys):
    assert main(["models", "fetch", "--only", "whisper-large"]) == 2
    err = capsys.readouterr().err
    assert "no model named whisper-large" in err and "whisper-tiny.en" in err


def test_models_list_shows_state_size_and_licence(empty_home, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "llm-qwen2.5-coder-1.5b" in out and "missing" in out and "Apache-2.0" in out


def test_the_parley_command_is_installed():
    result = subprocess.run([sys.executable, "-m", "parley.appliance.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "doctor" in result.stdout


def test_doctor_names_a_taken_port_and_the_fix(empty_home):
    import socket

    (empty_home / "parley.toml").write_text('[appliance]\nbus_transport = "tcp"\nbus_base_port = 5980\n')
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 5982))
        holder.listen()
        checks = {c.name: c for c in run_checks(load_settings(), "test")}
    assert checks["bus +2"].status == FAIL and "127.0.0.1:5982/tcp unavailable" in checks["bus +2"].detail
    assert checks["bus +0"].status == PASS


def test_a_broken_parley_toml_is_a_clear_error(empty_home, capsys):
    (empty_home / "parley.toml").write_text('[appliance]\nsip_prot = 5060\n')
    assert main(["doctor"]) == 2
    assert "unknown [appliance] keys ['sip_prot']" in capsys.readouterr().err


def test_doctor_fails_when_a_compiled_core_module_is_missing(empty_home, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def import_module(name, *args):
        if name == "parley.core.jitter":
            raise ImportError("parley.core._jitter_c is not compiled: run `make setup`")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    (check,) = [c for c in run_checks(load_settings(), "test") if c.name == "cython core"]
    assert check.status == FAIL and "_jitter_c is not compiled" in check.detail
