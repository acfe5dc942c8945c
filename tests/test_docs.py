"""The docs are under test: every command, option and config key is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from pydantic import BaseModel

from tidegate.cli import app
from tidegate.config import Config, EntityDefinition

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()
CONFIG_DOC = (ROOT / "docs" / "config.md").read_text()
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_cli_reference_is_generated_from_current_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_option_is_in_the_cli_reference(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    assert f"## tidegate {command}" in CLI_DOC
    assert click_command.help, f"{command} has no help text"
    for parameter in click_command.params:
        for option in parameter.opts:
            assert option in CLI_DOC


def config_keys() -> list[tuple[str, str]]:
    keys = []
    for section, field in Config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            for name, sub in field.annotation.model_fields.items():
                keys.append((section, sub.alias or name))
    keys += [("entities.define.<NAME>", name) for name in EntityDefinition.model_fields]
    return keys


@pytest.mark.parametrize(("section", "key"), config_keys())
def test_every_config_key_is_documented(section: str, key: str) -> None:
    if key == "define":
        assert "[entities.define.<NAME>]" in CONFIG_DOC
        return
    assert f"### `[{section}]`" in CONFIG_DOC
    assert f"| `{key}` |" in CONFIG_DOC
