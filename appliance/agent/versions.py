"""Agent versions: an agent folder's files as immutable content in the store.

A call records the version that served it. Here only what calls need: the content of a folder
and the version holding exactly that content, saved on first use.
"""

import getpass
import hashlib
import json
from pathlib import Path

CONTENT_SUFFIXES = (".yaml", ".yml", ".md", ".txt")


def agent_content(folder):
    """Every text file of the agent folder (agent.yaml, kb/, tests/) by relative path."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and path.suffix in CONTENT_SUFFIXES and not any(p.startswith(".") for p in relative.parts):
            files[relative.as_posix()] = path.read_text(encoding="utf-8")
    return {"files": files}


def content_hash(content):
    """The store's hash of ``content``: sha256 of its canonical JSON."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_version(store, name, folder, *, message="saved when first used by a call"):
    """The version of agent ``name`` with the folder's exact content, saved now if there is none."""
    content = agent_content(folder)
    wanted = content_hash(content)
    try:
        versions = store.agent_versions(name)
    except LookupError:
        versions = []
    for version in versions:
        if version.content_hash == wanted:
            return version
    return store.save_agent_version(name, content, author=getpass.getuser(), message=message)
