"""tidegate: incremental, provably complete export of a relational database to files.

The public library API. Everything a user needs is importable from here; the CLI is a thin
layer over the same functions.
"""

from tidegate.api import (
    Overview,
    chain_status,
    claim_changes,
    entities_disable,
    entities_enable,
    entities_list,
    entities_reset,
    export_initial,
    export_ongoing,
    export_tables,
    init,
    list_runs,
    load,
    load_position,
    overview,
    pending_changes,
    read_claim,
    target_ddl,
    uninstall,
    verify,
)
from tidegate.config import Config, load_config
from tidegate.errors import (
    CaptureError,
    ConfigError,
    JobBusy,
    LockLost,
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
    "LockLost",
    "NotInitialized",
    "Overview",
    "RunRecord",
    "SourceError",
    "SourceUnavailable",
    "TidegateError",
    "__version__",
    "chain_status",
    "claim_changes",
    "entities_disable",
    "entities_enable",
    "entities_list",
    "entities_reset",
    "export_initial",
    "export_ongoing",
    "export_tables",
    "init",
    "list_runs",
    "load",
    "load_config",
    "load_position",
    "overview",
    "pending_changes",
    "read_claim",
    "target_ddl",
    "uninstall",
    "verify",
]
