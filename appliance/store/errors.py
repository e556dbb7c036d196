"""What can go wrong in the store, as types a caller can catch, each message saying what to do."""

from pathlib import Path


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class DatabaseFileError(StoreError):
    """The file at the store's path cannot be used: not SQLite, damaged, or not openable.

    The store never deletes or re-creates such a file; a person decides what happens to it.
    """

    def __init__(self, path: Path, problem: str, remedy: str):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}; {remedy}")


class MigrationError(StoreError):
    """The database's schema history and the migrations this code ships disagree, or one failed."""


class StoreBusyError(StoreError):
    """Another connection held the write lock for longer than the busy timeout."""


class InvalidRecordError(StoreError, ValueError):
    """A value handed to the store breaks a rule of the schema; nothing was written."""


class UnknownRecordError(StoreError, LookupError):
    """A record that was asked for, or referred to, does not exist."""


class DuplicateRecordError(StoreError):
    """A record that must be unique is already stored; the stored one is left as it was."""
