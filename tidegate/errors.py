"""One exception tree for everything tidegate refuses or cannot do.

Every error a user can cause or fix derives from :class:`TidegateError`. Its message names
the thing at fault (file, key, table, job) and its ``hint`` says what to do next. The library
never prints or exits; ``tidegate.cli`` alone turns these into ``Error: …`` / ``Hint: …`` on
stderr and a non-zero exit status.
"""

from __future__ import annotations


class TidegateError(Exception):
    """Root of every error tidegate raises on purpose.

    Attributes:
        message: one line saying what is wrong and where.
        hint: one line saying how to fix it, or "" when there is nothing to add.
        transient: True when the same call may succeed if simply run again later
            (a busy lock, a server that went away); False when something must change first.
    """

    transient = False

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(TidegateError):
    """The configuration file, a key in it, or a command-line override is invalid."""


class SourceError(TidegateError):
    """The source database cannot be reached or does not have what tidegate needs."""


class SourceUnavailable(SourceError):
    """The source database server refused or dropped the connection."""

    transient = True


class CaptureError(SourceError):
    """Change capture cannot be installed on a table (no primary key, unsupported type, …)."""


class NotInitialized(SourceError):
    """tidegate's control tables are missing: `tidegate init` has not been run."""


class EntityRefused(TidegateError):
    """The entity exists but cannot be exported (its export class, or its shape)."""


class FormatError(TidegateError):
    """A file or name does not follow tidegate's export formats."""


class ExportError(TidegateError):
    """An export cannot be written as asked (a value the output encoding cannot hold, …)."""


class OutputError(TidegateError):
    """The output location cannot be written (missing, read-only, full)."""


class LoadError(TidegateError):
    """An export cannot be loaded: tampered, incomplete, out of order, or hostile."""


class NoExports(LoadError):
    """The location does not exist or holds no export: to a command, a wrong path; to
    `serve`'s scheduled load, nothing exported yet."""


class TargetError(TidegateError):
    """The target database cannot be reached or written."""


class JobBusy(TidegateError):
    """Another process holds the lock of the same job."""

    transient = True


class LockLost(SourceUnavailable):
    """The job's lock went away while the job ran (the server ended the session that held
    it), so the job stopped before its next step that must not happen twice."""
