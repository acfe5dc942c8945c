"""`python -m tidegate` runs the CLI."""

from tidegate.cli import app

app()
