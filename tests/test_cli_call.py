"""`parley call` and `parley demo` refuse bad input with a message, before starting any worker."""

from parley.appliance.cli import main


def test_call_without_a_microphone_says_so(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr("parley.appliance.cli.call.LocalAudio.__init__", _no_devices)
    assert main(["call", "--mic"]) == 2
    assert "no default microphone and speaker" in capsys.readouterr().err


def _no_devices(self, rate):
    from parley.appliance.media.local_audio import LocalAudioError

    raise LocalAudioError("no default microphone and speaker (0 audio devices seen): plug in a headset")


def test_call_with_a_file_that_is_not_a_wav_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    broken = tmp_path / "caller.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert main(["call", "--wav", str(broken)]) == 2
    assert "not a readable WAV file" in capsys.readouterr().err


def test_call_with_a_truncated_wav_plays_what_is_there(tmp_path):
    import wave

    import numpy as np

    from parley.appliance.media.file_channel import read_wav

    path = tmp_path / "short.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.sin(np.arange(16000) / 10) * 8000).astype("<i2").tobytes())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 1])  # cut mid-sample, header still claims the full length
    samples = read_wav(path, 8000)
    assert 3000 < samples.shape[0] < 4200 and np.isfinite(samples).all()
