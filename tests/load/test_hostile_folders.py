"""Hostile export folders: manifests linked to endless or huge files, numbers out of range,
names with digits that are not ASCII. `verify` and `load` each refuse every case in one line
naming the file, agree with each other, leave the target untouched, and stay within a
memory bound (each runs as its own process under an address-space limit, so a regression
fails the test instead of exhausting the machine)."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.load.test_refusals import assert_target_untouched, exports, table_folders

__all__ = ["exports"]  # the fixture, shared with test_refusals

MEMORY_LIMIT = 1536 * 1024 * 1024
"""Address space each command may use: far more than an honest verify or load of these
exports needs, far less than reading /dev/zero to the end."""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def command(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """`tidegate <args>` as its own process, memory-capped, the target in tmp_path."""
    (tmp_path / "tidegate.toml").write_text(
        f'[target]\nurl = "sqlite:///{tmp_path / "target.db"}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
        env={**os.environ, "TIDEGATE_CONFIG": ""},
    )
    return done.returncode, done.stdout, done.stderr


def both_refuse(tmp_path: Path, location: Path, names: str, says: str) -> None:
    """verify lists the problem (naming the file, saying `says`) and exits 1; load exits 1
    with the same problem as its one error line; nothing reaches the target."""
    code, out, err = command(tmp_path, "verify", str(location), "--json")
    assert code == 1, out + err
    problems = json.loads(out)["problems"]
    found = [p for p in problems if names in p["file"] and re.search(says, p["message"])]
    assert found, problems
    code, _out, err = command(tmp_path, "load", str(location))
    assert code == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "unexpected" not in err, err
    assert 1 <= len(lines) <= 2 and lines[0].startswith("Error: "), err
    assert names in lines[0] and re.search(says, lines[0]), lines[0]
    assert_target_untouched(tmp_path)


def _manifest(location: Path, index: int = 1) -> Path:
    folder = table_folders(location)[index]
    return folder / f"{folder.name}.extracted.xml"


def _edit_manifest(location: Path, pattern: str, replacement: str, index: int = 1) -> str:
    path = _manifest(location, index)
    text = path.read_text()
    edited = re.sub(pattern, replacement, text, count=1)
    assert edited != text
    path.write_text(edited)
    return path.name


def link_manifest_to_dev_zero(location: Path) -> str:
    path = _manifest(location)
    path.unlink()
    path.symlink_to("/dev/zero")
    return path.name


def link_manifest_to_a_real_manifest(location: Path) -> str:
    """A link to a genuine file is refused all the same: links are never followed."""
    path = _manifest(location)
    real = path.with_name("elsewhere.xml")
    path.rename(real)
    path.symlink_to(real)
    return path.name


def grow_manifest(location: Path) -> str:
    path = _manifest(location)
    with path.open("ab") as handle:
        handle.write(b"<!--" + b" " * (32 * 1024 * 1024) + b"-->\n")
    return path.name


def link_run_manifest_to_dev_zero(location: Path) -> str:
    path = sorted((location / "entities").glob("INC_EXPORT_*.manifest.json"))[0]
    path.unlink()
    path.symlink_to("/dev/zero")
    return path.name


def link_zip_sha1_to_dev_zero(location: Path) -> str:
    folder = table_folders(location)[1]
    path = folder / f"{folder.name}.zip.sha1"
    path.unlink()
    path.symlink_to("/dev/zero")
    return path.name


def created_ts_out_of_range(location: Path) -> str:
    return _edit_manifest(location, r"<created-ts>\d+<", "<created-ts>100000000000000000000<")


def audit_key_out_of_range(location: Path) -> str:
    return _edit_manifest(
        location, r'<hwm-to audit-key="\d+"', '<hwm-to audit-key="1' + "0" * 23 + '"'
    )


def hwm_to_below_hwm_from(location: Path) -> str:
    return _edit_manifest(location, r'<hwm-to audit-key="\d+"', '<hwm-to audit-key="0"')


def non_ascii_digits_in_manifest(location: Path) -> str:
    return _edit_manifest(location, r"<max-data-ts>\d", "<max-data-ts>\u0663")


def non_ascii_digits_in_folder_name(location: Path) -> str:
    folder = table_folders(location)[2]
    digits = folder.name.split("_")[1]
    arabic = "".join(chr(0x0660 + int(d)) for d in digits)
    renamed = folder.with_name(folder.name.replace(f"export_{digits}_", f"export_{arabic}_", 1))
    folder.rename(renamed)
    return renamed.name


def run_count_out_of_range(location: Path) -> str:
    path = sorted((location / "entities").glob("INC_EXPORT_*.manifest.json"))[0]
    manifest = json.loads(path.read_text())
    manifest["files"][0]["records"] = 10**23
    path.write_text(json.dumps(manifest))
    return path.name


HOSTILE: list[tuple[Callable[[Path], str], str]] = [
    (link_manifest_to_dev_zero, "symbolic link"),
    (link_manifest_to_a_real_manifest, "symbolic link"),
    (grow_manifest, "larger than"),
    (link_run_manifest_to_dev_zero, "symbolic link"),
    (link_zip_sha1_to_dev_zero, "symbolic link"),
    (created_ts_out_of_range, "created-ts.*out of range"),
    (audit_key_out_of_range, "audit-key.*out of range"),
    (hwm_to_below_hwm_from, "hwm-to .*below hwm-from"),
    (non_ascii_digits_in_manifest, "max-data-ts.*not a whole number"),
    (non_ascii_digits_in_folder_name, "not ASCII"),
    (run_count_out_of_range, "records.*out of range"),
]


@pytest.mark.parametrize(("tamper", "says"), HOSTILE, ids=[t.__name__ for t, _ in HOSTILE])
def test_hostile_folders_are_refused_alike_by_verify_and_load(
    exports: Path, tmp_path: Path, tamper: Callable[[Path], str], says: str
) -> None:
    names = tamper(exports)
    both_refuse(tmp_path, exports, names, says)
