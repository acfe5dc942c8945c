"""Write docs/cli.md from the CLI's own --help, or check that it is current (--check).

The reference is generated so that it cannot drift from the code; the test suite runs
`--check`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from tidegate.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADER = """# CLI reference

Generated from `tidegate --help` by `scripts/cli_docs.py`; do not edit by hand. Every command
exits 0 on success and 1 with `Error: …` (and usually `Hint: …`) on stderr otherwise; usage
mistakes exit 2. Global options go before the command:
`tidegate --config prod.toml --set source.schema=sales runs --json`.
"""


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=100, env={"COLUMNS": "100"})
    return result.stdout.rstrip()


def render() -> str:
    group = typer.main.get_command(app)
    sections = [HEADER, "## tidegate\n", "```text", help_text(), "```\n"]
    for name in group.commands:  # type: ignore[attr-defined]
        sections += [f"## tidegate {name}\n", "```text", help_text(name), "```\n"]
    return "\n".join(sections)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/cli.md is out of date: run python scripts/cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
