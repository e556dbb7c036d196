"""The store's schema as a numbered, ordered set of SQL migrations, and the runner that applies them.

Migrations live in ``migrations/NNNN_name.sql``, written as plain SQL so a reviewer reads
exactly what runs. Each one runs in its own transaction together with its row in
``schema_migrations`` (number, name, sha256 of the file, applied_at): a migration that fails
leaves the database at the previous version. A file changed after it was applied, or a
database that has migrations this code does not know, is refused rather than guessed at.
"""

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from sqlite_utils import Database

from .errors import MigrationError
from .timestamps import from_utc_text, utc_text

MIGRATION_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number      INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    applied_at  TEXT NOT NULL
) STRICT
"""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str
    sha256: str
    """Of the file's bytes: recorded when applied, compared on every open."""

    @property
    def filename(self) -> str:
        return f"{self.number:04d}_{self.name}.sql"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    number: int
    name: str
    sha256: str
    applied_at: datetime

    @property
    def filename(self) -> str:
        return f"{self.number:04d}_{self.name}.sql"


class MigrationSet:
    """Migrations numbered 0001, 0002, … without gaps, applied in that order."""

    def __init__(self, migrations: Iterable[Migration]):
        self.migrations = tuple(sorted(migrations, key=lambda migration: migration.number))
        numbers = [migration.number for migration in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            found = ", ".join(migration.filename for migration in self.migrations) or "none"
            raise MigrationError(f"migrations must be numbered 0001, 0002, … without gaps or repeats; found {found}")

    @classmethod
    def from_folder(cls, folder: Traversable | Path) -> "MigrationSet":
        migrations = []
        for entry in folder.iterdir():
            if not entry.name.endswith(".sql"):
                continue
            match = MIGRATION_FILENAME.match(entry.name)
            if match is None:
                raise MigrationError(f"{entry}: a migration file is named NNNN_snake_case_name.sql; rename it")
            data = entry.read_bytes()
            sha256 = hashlib.sha256(data).hexdigest()
            migrations.append(Migration(int(match[1]), match[2], data.decode("utf-8"), sha256))
        return cls(migrations)

    @classmethod
    def packaged(cls) -> "MigrationSet":
        """The migrations shipped in this package's ``migrations/`` folder."""
        return cls.from_folder(resources.files(__package__) / "migrations")

    def applied(self, db: Database) -> list[AppliedMigration]:
        """The migrations the database records as applied, by number. Read-only."""
        if not db.table("schema_migrations").exists():
            return []
        rows = db.query("SELECT number, name, sha256, applied_at FROM schema_migrations ORDER BY number")
        return [AppliedMigration(r["number"], r["name"], r["sha256"], from_utc_text(r["applied_at"])) for r in rows]

    def pending(self, db: Database) -> list[Migration]:
        """The migrations still to apply, in order. Read-only.

        Raises MigrationError when the database's history contradicts this set, because then
        no list of pending migrations would be true.
        """
        applied = self.applied(db)
        known = {migration.number: migration for migration in self.migrations}
        for record in applied:
            migration = known.get(record.number)
            if migration is None:
                newest = self.migrations[-1].filename if self.migrations else "none"
                raise MigrationError(
                    f"the database has {record.filename} applied but this code knows migrations only up to "
                    f"{newest}: it was written by a newer Parley; run that version, or restore a backup taken "
                    "before the upgrade"
                )
            if (migration.name, migration.sha256) != (record.name, record.sha256):
                raise MigrationError(
                    f"{record.filename} was applied on {record.applied_at:%Y-%m-%d %H:%M} UTC but the file is now "
                    f"{migration.filename} with a different content (sha256 {record.sha256[:12]}… then, "
                    f"{migration.sha256[:12]}… now): restore the file as it was applied and put the change in a "
                    "new migration"
                )
        done = {record.number for record in applied}
        pending = [migration for migration in self.migrations if migration.number not in done]
        if pending and done and pending[0].number < max(done):
            raise MigrationError(
                f"the database records migration {max(done):04d} but not {pending[0].filename}: its "
                "schema_migrations table was edited by hand; restore a backup"
            )
        return pending

    def apply(self, db: Database) -> list[Migration]:
        """Apply the pending migrations in order, each with its bookkeeping row in one transaction.

        Returns the migrations this call applied; another process opening the same file at the
        same time may have applied some of them, which is fine.
        """
        applied_now = []
        while self.pending(db):
            migration = self._apply_next(db)
            if migration is not None:
                applied_now.append(migration)
        return applied_now

    def _apply_next(self, db: Database) -> Migration | None:
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        migration = None
        try:
            pending = self.pending(db)  # again, now that this connection holds the write lock
            if pending:
                migration = pending[0]
                conn.execute(_CREATE_BOOKKEEPING)
                _run_statements(conn, migration)
                conn.execute(
                    "INSERT INTO schema_migrations (number, name, sha256, applied_at) VALUES (?, ?, ?, ?)",
                    [migration.number, migration.name, migration.sha256, utc_text()],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return migration


def _run_statements(conn: sqlite3.Connection, migration: Migration) -> None:
    """Run a migration's statements inside the caller's transaction.

    ``executescript`` would commit first, so statements run one by one. Transaction control in
    the file would end the runner's transaction early, so an authorizer refuses it.
    """
    refused = []

    def refuse_transaction_control(action, *_):
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            refused.append(action)
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.set_authorizer(refuse_transaction_control)
    try:
        for number, statement in enumerate(_statements(migration.sql), start=1):
            try:
                conn.execute(statement)
            except sqlite3.Error as exc:
                reason = (
                    "it contains BEGIN/COMMIT/SAVEPOINT; remove them, the runner gives each migration one transaction"
                    if refused
                    else str(exc)
                )
                raise MigrationError(
                    f"{migration.filename} failed at statement {number} ({reason}); it was rolled back and the "
                    f"database stays at migration {migration.number - 1:04d}"
                ) from exc
    finally:
        conn.set_authorizer(None)


def _statements(sql: str) -> Iterator[str]:
    """Split SQL into statements; ``sqlite3.complete_statement`` keeps triggers and quoted ';' whole."""
    statement = ""
    for piece in re.split(r"(?<=;)", sql):
        statement += piece
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement
