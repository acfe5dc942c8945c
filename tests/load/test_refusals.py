"""Tampered, incomplete and hostile exports: named by `verify`, refused by `load` (one
error line naming the file, exit 1), and the target left as it was."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import fill, order_tables
from tests.load.test_roundtrip import change
from tests.tables.helpers import sample_tables
from tests.test_cli import assert_one_error, run
from tidegate import api
from tidegate.load import archive


@pytest.fixture
def exports(sqlite_source: Source, tmp_path: Path) -> Path:
    """Three table-export folders and two entity runs of a SQLite source."""
    source = sqlite_source
    source.create(*sample_tables(), *order_tables())
    fill(source, 6)
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    rng = random.Random(3)
    change(source, rng, 10)
    tidegate.export_tables(config)
    api.export_initial(config, threads=1)
    for _ in range(2):
        change(source, rng, 6)
        with source.engine().begin() as conn:
            conn.exec_driver_sql("UPDATE orders SET note = 'changed' WHERE order_no <= 2")
        tidegate.export_tables(config)
        api.export_ongoing(config, threads=1)
    folders = table_folders(tmp_path / "exports")
    assert len(folders) == 3
    return tmp_path / "exports"


def table_folders(location: Path) -> list[Path]:
    return sorted(
        (p for p in location.iterdir() if p.name.startswith("export_")),
        key=lambda p: int(p.name.split("_")[1]),
    )


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = f'[target]\nurl = "sqlite:///{tmp_path / "target.db"}"\n'
    return run(tmp_path, *args, config=config)


def assert_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    if not target.exists():
        return
    engine = sa.create_engine(f"sqlite:///{target}")
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        if "tidegate_applied" in tables:
            assert conn.exec_driver_sql("SELECT count(*) FROM tidegate_applied").scalar() == 0
        for table in ("parent", "orders"):
            if table in tables:
                assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0
    engine.dispose()


def refused(tmp_path: Path, location: Path, names: str) -> None:
    """verify names the file and exits 1; load exits 1 with one error line naming it; the
    target holds nothing."""
    code, out, _err = cli(tmp_path, "verify", str(location))
    assert code == 1 and names in out, out
    code, _out, err = cli(tmp_path, "load", str(location))
    assert code == 1, err
    assert_one_error(err, rf"Error: .*{names}.*")
    assert_target_untouched(tmp_path)


def test_the_untouched_exports_verify_and_load(exports: Path, tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "verify", str(exports))
    assert code == 0 and "all verified" in out, out
    (exports / "backups").mkdir()  # not an export: a note, not a problem
    code, out, _ = cli(tmp_path, "verify", str(exports), "--json")
    assert code == 0
    assert json.loads(out) == {
        "table_exports": 3,
        "entity_runs": 3,
        "problems": [],
        "notes": [{"file": "backups", "message": "not an export folder (ignored)"}],
    }
    code, out, err = cli(tmp_path, "load", str(exports))
    assert code == 0, err
    assert "loaded 3 table export(s)" in out
    code, out, _ = cli(tmp_path, "load", str(exports))
    assert code == 0 and "nothing to load" in out


# --- tampering -------------------------------------------------------------------------------


def flip_a_byte(location: Path) -> str:
    middle = table_folders(location)[1]
    zipped = middle / f"{middle.name}.zip"
    data = bytearray(zipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    zipped.write_bytes(bytes(data))
    return zipped.name


def truncate_entity_file(location: Path) -> str:
    victim = sorted((location / "entities").glob("INC_EXPORT_*.json.gz"))[0]
    victim.write_bytes(victim.read_bytes()[:-9])
    return victim.name


def delete_middle_folder(location: Path) -> str:
    folders = table_folders(location)
    shutil.rmtree(folders[1])
    return folders[2].name


def delete_a_manifest(location: Path) -> str:
    middle = table_folders(location)[1]
    (middle / f"{middle.name}.extracted.xml").unlink()
    return middle.name


def swap_two_manifests(location: Path) -> str:
    first, second = table_folders(location)[1:]
    a, b = first / f"{first.name}.extracted.xml", second / f"{second.name}.extracted.xml"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    return first.name


def corrupt_an_entity_manifest(location: Path) -> str:
    victim = sorted((location / "entities").glob("INC_EXPORT_*.manifest.json"))[0]
    text = victim.read_text()
    victim.write_text(text[: len(text) // 2])
    return victim.name


@pytest.mark.parametrize(
    "tamper",
    [
        flip_a_byte,
        truncate_entity_file,
        delete_middle_folder,
        delete_a_manifest,
        swap_two_manifests,
        corrupt_an_entity_manifest,
    ],
)
def test_tampered_exports_are_named_and_refused(
    exports: Path, tmp_path: Path, tamper: Callable[[Path], str]
) -> None:
    refused(tmp_path, exports, tamper(exports))


def test_an_unreadable_manifest_is_named_once(exports: Path, tmp_path: Path) -> None:
    """Its problem line says its path once (it once said it twice)."""
    name = corrupt_an_entity_manifest(exports)
    code, out, _err = cli(tmp_path, "verify", str(exports))
    assert code == 1 and out.count(name) == 1, out
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1 and err.count(name) == 1, err


# --- hostile archives ------------------------------------------------------------------------
# Each rewrites the first folder's zip, then makes every checksum right again, so only the
# loader's own checks stand between the archive and the target.


def rewrite(location: Path, change_members: Callable[[dict[str, bytes]], None]) -> Path:
    folder = table_folders(location)[0]
    zipped = folder / f"{folder.name}.zip"
    with zipfile.ZipFile(zipped) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    change_members(members)
    for name in [n for n in members if not n.endswith(".sha1")]:
        members[f"{name}.sha1"] = f"{hashlib.sha1(members[name]).hexdigest()}  {name}\n".encode()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            if name.startswith("LINK:"):
                info = zipfile.ZipInfo(name.removeprefix("LINK:"))
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                target.writestr(info, data)
            else:
                target.writestr(name, data)
    digest = hashlib.sha1(zipped.read_bytes()).hexdigest()
    (folder / f"{folder.name}.zip.sha1").write_text(f"{digest}  {zipped.name}\n")
    record_member_sizes(folder, {n.removeprefix("LINK:"): len(d) for n, d in members.items()})
    return folder


def record_member_sizes(folder: Path, sizes: dict[str, int]) -> None:
    """Make the manifest's member sizes those of `sizes`, as an attacker would."""
    manifest = folder / f"{folder.name}.extracted.xml"
    lines = [
        line
        for line in manifest.read_text().splitlines()
        if not line.startswith("<tidegate-member ")
    ]
    listed = [
        f'<tidegate-member name="{escape(name)}" bytes="{size}"/>' for name, size in sizes.items()
    ]
    manifest.write_text("\n".join([*lines[:-1], *listed, lines[-1]]) + "\n")


def with_bad_utf8(csv: bytes) -> bytes:
    header, first, rest = csv.split(b"\n", 2)
    return b"\n".join([header, first.replace(b",", b",\xff\xfe", 1), rest])


def with_extra_field(csv: bytes) -> bytes:
    header, first, rest = csv.split(b"\n", 2)
    return b"\n".join([header, first + b",extra", rest])


HOSTILE: dict[str, tuple[Callable[[dict[str, bytes]], None], str]] = {
    "dot-dot member": (lambda m: m.update({"../evil.csv": b"x"}), "unsafe name"),
    "slash member": (lambda m: m.update({"a/b.csv": b"x"}), "unsafe name"),
    "absolute member": (lambda m: m.update({"/tmp/evil.csv": b"x"}), "unsafe name"),
    "link member": (lambda m: m.update({"LINK:evil.csv": b"/etc/passwd"}), "link"),
    # Its manifest made right as well: inflated as a stream, refused for what it holds.
    "zip bomb": (lambda m: m.update({"parent.csv": b"\0" * (64 * 1024 * 1024)}), "header"),
    "extra field": (
        lambda m: m.update({"parent.csv": with_extra_field(m["parent.csv"])}),
        "fields",
    ),
    # A table without binary columns: its records go to the driver as the CSV reader gives them.
    "extra field, no binary": (
        lambda m: m.update({"child line.csv": with_extra_field(m["child line.csv"])}),
        "fields",
    ),
    "unknown column": (
        lambda m: m.update({"parent.csv": b"id,sneaky" + m["parent.csv"][2:]}),
        "header",
    ),
    "invalid utf-8": (lambda m: m.update({"parent.csv": with_bad_utf8(m["parent.csv"])}), "UTF-8"),
    "unknown table": (
        lambda m: m.update(
            {"tidegate.schema.json": m["tidegate.schema.json"].replace(b'"parent"', b'"other"', 1)}
        ),
        "schema",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(exports: Path, tmp_path: Path, case: str) -> None:
    change_members, says = HOSTILE[case]
    folder = rewrite(exports, change_members)
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1, err
    assert_one_error(err, rf"Error: {folder.name}/.*")
    assert says in err
    assert_target_untouched(tmp_path)
    assert not (exports.parent / "evil.csv").exists() and not Path("/tmp/evil.csv").exists()


def test_a_member_larger_than_its_manifest_says_is_refused_before_inflating(
    exports: Path, tmp_path: Path
) -> None:
    """A zip bomb beside an untouched manifest: the zip's directory says 1 GiB, the manifest
    a few hundred bytes, and nothing is inflated."""
    folder = table_folders(exports)[0]
    manifest = (folder / f"{folder.name}.extracted.xml").read_bytes()
    rewrite(exports, lambda m: m.update({"parent.csv": b"\0" * (1024 * 1024 * 1024)}))
    (folder / f"{folder.name}.extracted.xml").write_bytes(manifest)
    started = time.monotonic()
    refused(tmp_path, exports, "would inflate to 1,073,741,824 bytes, its manifest says")
    assert time.monotonic() - started < 30


def test_a_line_past_the_limit_is_refused(
    exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records are measured between the chunks a member is read in, so both shrink together.
    monkeypatch.setattr(archive, "MAX_RECORD_BYTES", 4096)
    monkeypatch.setattr(archive, "CHUNK", 1024)
    folder = rewrite(
        exports,
        lambda m: m.update({"parent.csv": m["parent.csv"] + b"7," + b"y" * 5000 + b",,,,,,,\n"}),
    )
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1
    assert_one_error(err, rf"Error: {folder.name}/.*longer than 4,096 bytes.*")
    assert_target_untouched(tmp_path)


def rewrite_initial_file(exports: Path, edit: Callable[[bytes], bytes]) -> str:
    """Edit an initial run's file that holds records (its JSON Lines, decompressed) and make
    its manifest entry right again (records, bytes, sha1), as an attacker would; its name."""
    manifest_path = sorted((exports / "entities").glob("INIT_EXPORT_*.manifest.json"))[0]
    manifest = json.loads(manifest_path.read_text())
    entry = next(f for f in manifest["files"] if f["records"])
    path = exports / "entities" / entry["name"]
    lines = edit(gzip.decompress(path.read_bytes()))
    data = gzip.compress(lines)
    path.write_bytes(data)
    entry.update(
        records=lines.count(b"\n"),
        bytes=len(data),
        sha1=hashlib.sha1(data).hexdigest(),
        longest=max(len(line) + 1 for line in lines.split(b"\n")),
    )
    manifest_path.write_text(json.dumps(manifest))
    return str(entry["name"])


def assert_no_entity_run_applied(tmp_path: Path) -> None:
    """The table exports before the refused run were applied, each whole; no entity run."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    with engine.connect() as conn:
        kinds = conn.exec_driver_sql("SELECT DISTINCT kind FROM tidegate_applied").scalars()
        assert set(kinds) == {"tables"}
    engine.dispose()


def first_record(edit: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    """An edit of the first record of a file's JSON Lines."""

    def edited(lines: bytes) -> bytes:
        records = [json.loads(line) for line in lines.splitlines()]
        edit(records[0])
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)

    return edited


def test_json_nested_past_the_limit_is_refused(exports: Path, tmp_path: Path) -> None:
    """An entity file whose record nests 100,000 arrays deep (checksums made right)."""
    deep = b'{"OBJ":"ORDERS","TIMESTAMP":"x","PK1":"a","PK2":"1","DATA":' + b"[" * 100_000
    name = rewrite_initial_file(exports, lambda _lines: deep + b"\n")
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1
    assert_one_error(err, rf"Error: entities/{name}: record 1: not a JSON record.*")
    assert_no_entity_run_applied(tmp_path)


@pytest.mark.parametrize("where", ["start", "middle"])
def test_a_damaged_deflate_stream_is_refused(exports: Path, tmp_path: Path, where: str) -> None:
    """Bytes of a member's deflated data changed and the zip's .sha1 made right: the
    inflater's error (a block of no valid type at the start) or the member's CRC (data
    that inflates, but to other bytes) names the member; nothing is applied."""
    folder = table_folders(exports)[0]
    zipped = folder / f"{folder.name}.zip"
    with zipfile.ZipFile(zipped) as source:
        info = source.getinfo("parent.csv")
    data = bytearray(zipped.read_bytes())
    local_extra = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(info.filename.encode()) + local_extra
    if where == "start":
        data[start] = 0xFF  # final block, of the reserved type 3
    else:
        for offset in range(start + info.compress_size // 3, start + info.compress_size // 3 + 8):
            data[offset] ^= 0x5A
    zipped.write_bytes(bytes(data))
    digest = hashlib.sha1(bytes(data)).hexdigest()
    (folder / f"{folder.name}.zip.sha1").write_text(f"{digest}  {zipped.name}\n")
    code, out, err = cli(tmp_path, "verify", str(exports))
    assert code == 1 and "member 'parent.csv' is damaged" in " ".join(out.split()), out + err
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1, err
    says = "invalid|Invalid" if where == "start" else "CRC"
    assert_one_error(err, rf"Error: {folder.name}/{zipped.name}: member 'parent\.csv' .*({says}).*")
    assert_target_untouched(tmp_path)


def test_an_entity_row_without_its_key_is_refused(exports: Path, tmp_path: Path) -> None:
    """A row whose key column is empty (checksums made right) is refused, naming the table
    and column, before the target sees it (a SQLite INTEGER key is the rowid, which would
    take a new value for NULL)."""

    def empty_key(record: dict[str, Any]) -> None:
        record["DATA"]["orders"][0]["order_no"] = ""

    rewrite_initial_file(exports, first_record(empty_key))
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1
    assert_one_error(err, r"Error: .*'orders'.*key column 'order_no' is empty.*")
    assert_no_entity_run_applied(tmp_path)


@pytest.mark.parametrize(("value", "says"), [("11u", "does not fit 'order_no'"), ("", "is empty")])
def test_an_entity_key_its_column_cannot_hold_is_refused(
    exports: Path, tmp_path: Path, value: str, says: str
) -> None:
    """Regression (found by the fuzz test of hostile contents): a record whose PK2 is not
    an integer, with every checksum made right, failed the load with an unexpected
    ValueError instead of a line naming the file and record."""
    name = rewrite_initial_file(exports, first_record(lambda record: record.update(PK2=value)))
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1
    assert_one_error(err, rf"Error: entities/{re.escape(name)}: record 1: PK2 .*")
    assert says in err
    assert_no_entity_run_applied(tmp_path)
