"""The one exception family. Every error a user can cause carries a one-line message meant for
them; the CLI prints it on stderr and exits non-zero, the TUI shows it. Depends on nothing."""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base of every user-facing error: `message` is one line, fit to print as it is."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFoundError(AnnotatorError):
    """A dataset, class, image, annotation or model run that does not exist."""


class InvalidInputError(AnnotatorError):
    """Bad arguments or bad data (a file, a record, a value)."""


class ConflictError(AnnotatorError):
    """An edit based on a stale revision, or a name that is already taken."""


class DatabaseBusyError(AnnotatorError):
    """Another program kept the database's write lock longer than this one would wait."""


class SchemaOutdatedError(AnnotatorError):
    """The database was written by an older schema revision."""


class StorageError(AnnotatorError):
    """A file, folder or database that cannot be written or read: no space left, no permission,
    a read-only or special file system, a file that is not a database."""


def os_error_reason(exc: OSError) -> str:
    """What went wrong, in the system's words: `No space left on device`."""
    return exc.strerror or str(exc) or type(exc).__name__


class MissingDependencyError(AnnotatorError):
    """An optional extra (torch, fiftyone, ...) is needed and not installed."""
