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
    assert checks["llm-qwen2.5-coder-1.5b"].status == "warn", "a demo-only model is not required for tests"
    assert checks["cython core"].status == PASS and checks["sqlite"].status == PASS
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
