"""`python -m tidegate` runs the CLI."""

from tidegate.cli import entry_point

entry_point()
