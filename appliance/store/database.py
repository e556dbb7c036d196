"""Opening the store's SQLite file: refuse what is not ours, and set what durability needs.

Durability: WAL journaling with ``synchronous=FULL``. WAL lets the store writer and readers
(TUI, exports) use the file at once; readers never block the writer. With ``NORMAL`` a commit
survives a crash of the process (the WAL is in the OS's cache) but the last commits can be lost
on power loss or an OS crash; with ``FULL`` the WAL is fsynced at every commit, so nothing
committed is lost either way. The store records what a regulator may ask for (a refund the
agent made, and its audit entry), so it pays one fsync per commit; ``Store.transaction()``
groups a turn's writes into one commit to keep that cost per turn, not per row.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from .errors import DatabaseFileError, InvalidRecordError, StoreBusyError, StoreError

BUSY_TIMEOUT_S = 5.0
"""How long a writer waits for another's write lock: far above any transaction the store runs
(milliseconds), short enough that a stuck writer is reported instead of hanging a service."""

MINIMUM_SQLITE = (3, 37, 0)
"""STRICT tables (3.37) and RETURNING (3.35)."""

_SQLITE_HEADER = b"SQLite format 3\x00"

_RESTORE = (
    "stop Parley, keep the file for inspection and restore the latest backup "
    "(or salvage rows with `sqlite3 FILE .recover`)"
)


def open_database(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> Database:
    """Open (creating it and its folder when absent) the SQLite file at ``path`` with the store's pragmas."""
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE:
        needed = ".".join(map(str, MINIMUM_SQLITE))
        raise StoreError(
            f"this Python links SQLite {sqlite3.sqlite_version} but the store needs {needed} or later: "
            "use a Python built against a newer SQLite (Debian 12, Ubuntu 22.04 or later)"
        )
    _refuse_foreign_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with translated_errors(path):
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
            journal_mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if journal_mode != "wal":
                problem = f"SQLite would not use WAL journaling for it (got {journal_mode!r})"
                raise DatabaseFileError(path, problem, "keep the store on a local disk")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            return Database(conn, execute_plugins=False)
        except BaseException:
            conn.close()
            raise


def _refuse_foreign_file(path: Path) -> None:
    """Stop before SQLite touches a file that is not a database, so nothing is ever written over it."""
    if path.is_dir():
        raise DatabaseFileError(path, "is a folder, not a database file", "move it, or set var_dir in parley.toml")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseFileError(path, f"cannot be read ({exc.strerror})", "check its owner and permissions") from exc
    if header and header != _SQLITE_HEADER:
        raise DatabaseFileError(
            path,
            "is not an SQLite database",
            "Parley will not write over it: move it aside, or set var_dir in parley.toml elsewhere",
        )


@contextmanager
def translated_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about the file, its lock or an unstorable value into typed errors; others pass through."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith("Error binding parameter"):
            raise InvalidRecordError(
                f"{exc}: the store takes text, numbers or None there (dicts and lists only in JSON fields); "
                "nothing was written"
            ) from exc
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise StoreBusyError(
                f"{path}: another connection kept the write lock past the busy timeout; nothing was written. "
                f"Retry, and look for a process holding a long transaction (`fuser {path}`)"
            ) from exc
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise DatabaseFileError(path, f"is damaged ({exc})", _RESTORE.replace("FILE", path.name)) from exc
        if name.startswith("SQLITE_CANTOPEN"):
            raise DatabaseFileError(path, "cannot be opened", "check that its folder exists and is writable") from exc
        if name.startswith("SQLITE_FULL"):
            raise DatabaseFileError(path, "cannot grow: the disk is full", "free space; commits are kept") from exc
        raise
