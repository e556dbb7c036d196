"""`parley voices`: the catalog of fetched voices and a sample rendered to a WAV."""

import wave

import pytest

from conftest import fetched
from parley.appliance.cli import main
from parley.appliance.speech.voices import DEFAULT_VOICE, UnknownVoice, find_voice, list_voices


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An appliance home whose models/ holds no voice yet."""
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_MODELS", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def home_with_voice(home, models_dir):
    """The fetched default voice, linked into the home, beside a model that is not a voice."""
    voice = fetched(models_dir, DEFAULT_VOICE, "model.onnx").parent
    (home / "models" / DEFAULT_VOICE).symlink_to(voice)
    other = home / "models" / "not-a-voice"
    other.mkdir()
    (other / "notes.txt").write_text("no model here")
    return home


@pytest.mark.models
def test_voices_lists_each_fetched_voice_with_rate_language_and_size(home_with_voice, capsys):
    assert main(["voices"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_VOICE} (default)" in out and "22050 Hz" in out and "English" in out and " MB" in out
    assert "not-a-voice" not in out


@pytest.mark.models
def test_a_voice_is_found_with_or_without_its_prefix(home_with_voice):
    voices = list_voices(home_with_voice / "models")
    assert [v.name for v in voices] == [DEFAULT_VOICE]
    assert find_voice(home_with_voice / "models", "en_US-joe-medium") == voices[0]
    assert voices[0].sample_rate == 22050 and voices[0].espeak_voice == "en-us" and voices[0].size_bytes > 10_000_000


@pytest.mark.models
def test_a_sample_is_rendered_to_a_wav_under_var_by_default(home_with_voice, capsys):
    assert main(["voices", DEFAULT_VOICE, "--sample", "--text", "Your order has shipped."]) == 0
    path = home_with_voice / "var" / "voices" / f"{DEFAULT_VOICE}-sample.wav"
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (22050, 1, 2)
        assert 1.0 < wav.getnframes() / 22050 < 4.0
    assert "written to" in capsys.readouterr().out


@pytest.mark.models
@pytest.mark.slow
def test_a_sample_can_be_rendered_at_the_telephone_rate_to_a_chosen_file(home_with_voice, tmp_path):
    out = tmp_path / "out" / "hello.wav"
    assert main(["voices", "en_US-joe-medium", "--sample", "--rate", "8000", "--out", str(out)]) == 0
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() > 8000


def test_an_unknown_voice_is_an_error_that_lists_the_voices_there_are(home, capsys):
    assert main(["voices", "nobody", "--sample"]) == 2
    err = capsys.readouterr().err
    assert "no voice named 'nobody'" in err and "parley models fetch" in err
    with pytest.raises(UnknownVoice):
        find_voice(home / "models", "nobody")


def test_sample_without_a_voice_says_how_to_name_one(home, capsys):
    assert main(["voices", "--sample"]) == 2
    assert "parley voices NAME --sample" in capsys.readouterr().err


def test_no_voices_fetched_says_what_to_run(home, capsys):
    assert main(["voices"]) == 1
    assert "run `parley models fetch`" in capsys.readouterr().out
