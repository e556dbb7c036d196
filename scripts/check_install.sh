#!/usr/bin/env bash
# `pip install .` (not editable) into a brand-new venv, then import the three packages and check
# the compiled core is inside: what a packager or a site install does.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q -U pip
"$venv/bin/pip" install -q .
cd /
"$venv/bin/python" - <<'PY'
import parley.core, parley.appliance, parley.tui
from parley.core import _g711, codecs
assert codecs.COMPILED and _g711.__file__.endswith(".so"), _g711.__file__
import tempfile, pathlib
from parley.appliance.store import Store
with tempfile.TemporaryDirectory() as tmp, Store.open(pathlib.Path(tmp) / "parley.db") as store:
    assert store.db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
print(f"pip install . ok: parley.core compiled at {_g711.__file__}")
PY
