"""tidegate: incremental, provably complete export of a relational database to files.

The public library API. Everything a user needs is importable from here; the CLI is a thin
layer over the same functions.
"""

from tidegate.api import (
    claim_changes,
    export_tables,
    init,
    list_runs,
    pending_changes,
    read_claim,
    uninstall,
)
from tidegate.config import Config, load_config
from tidegate.errors import (
    CaptureError,
    ConfigError,
    JobBusy,
    NotInitialized,
    SourceError,
    SourceUnavailable,
    TidegateError,
)
from tidegate.model import Change, Claim, InitReport, RunRecord
from tidegate.tables.export import ExportResult
from tidegate.version import __version__

__all__ = [
    "CaptureError",
    "Change",
    "Claim",
    "Config",
    "ConfigError",
    "ExportResult",
    "InitReport",
    "JobBusy",
    "NotInitialized",
    "RunRecord",
    "SourceError",
    "SourceUnavailable",
    "TidegateError",
    "__version__",
    "claim_changes",
    "export_tables",
    "init",
    "list_runs",
    "load_config",
    "pending_changes",
    "read_claim",
    "uninstall",
]
