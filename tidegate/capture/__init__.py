"""Change capture: install and remove the triggers, claim what they captured.

``install`` and ``uninstall`` manage triggers and control tables; ``ticks.claim`` stamps
committed changes with audit keys.
"""

from tidegate.capture.install import install, uncaptured, uninstall
from tidegate.capture.registry import capture_for, captured_tables
from tidegate.capture.ticks import claim, oldest_pending_us, pending_by_table, read_claim

__all__ = [
    "capture_for",
    "captured_tables",
    "claim",
    "install",
    "oldest_pending_us",
    "pending_by_table",
    "read_claim",
    "uncaptured",
    "uninstall",
]
