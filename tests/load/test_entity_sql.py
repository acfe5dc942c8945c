"""Entity runs applied set-based in SQL (PostgreSQL, `tidegate.load.entitysql`) leave the
target exactly as the record-by-record path (`entityrun`, the reference) does, or are
refused with the same message.

Runs are made by hand here, as another writer (or an attacker) could: records of every
value kind, most in the exporter's own forms and some in others the SQL path sends to the
record path, an entity key held twice in a run, DELETED records, an initial run then an
ongoing one. Each example is loaded twice into fresh PostgreSQL schemas, once as it comes
and once with the SQL path switched off, and the two targets compared row by row.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidegate
from tests.load.conftest import TargetDb, make_target
from tidegate import api
from tidegate.errors import TidegateError
from tidegate.load import entitysql
from tidegate.load.target import version_key

DECIMAL = "\ue000"  # marks a decimal to write as a JSON number
ZONE = "America/Sao_Paulo"  # naive date-times load from UTC into it
KEY = [{"name": "region", "type": "varchar(10)", "nullable": False}]
KEY += [{"name": "no", "type": "integer", "nullable": False}]
VALUES = {
    "flag": "boolean",
    "small": "smallint",
    "big": "bigint",
    "amount": "numeric(30,8)",
    "ratio": "float",
    "note": "text",
    "code": "varchar(5)",
    "placed": "timestamp",
    "seen": "timestamptz",
    "day": "date",
    "at": "time",
    "blob": "binary",
    "ident": "uuid",
}
TABLES = [
    {
        "name": "acct",
        "root_key": ["region", "no"],
        "primary_key": ["region", "no"],
        "columns": [
            *KEY,
            {"name": "label", "type": "text", "nullable": False},
            *({"name": n, "type": t, "nullable": True} for n, t in VALUES.items()),
        ],
    },
    {
        "name": "acct_line",
        "root_key": ["region", "no"],
        "primary_key": ["region", "no", "line"],
        "columns": [
            *KEY,
            {"name": "line", "type": "integer", "nullable": False},
            {"name": "qty", "type": "numeric(12,2)", "nullable": True},
        ],
    },
]


def _utc(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


moments = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))
texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
# Each kind: mostly the exporter's form, sometimes another (the record path's to decide).
VALUE = {
    "flag": st.sampled_from([True, False, "", "t", "yes"]),
    "small": st.one_of(st.integers(-(2**15), 2**15 - 1), st.just(""), st.just("7"), st.just(1.5)),
    "big": st.one_of(st.integers(-(2**63), 2**63 - 1), st.just(""), st.just(True)),
    "amount": st.one_of(
        st.decimals(-(10**12), 10**12, places=8, allow_nan=False), st.just(""), st.just("1e3")
    ),
    "ratio": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).filter(bool),
        st.sampled_from(["0", "-0", "Infinity", "-Infinity", "NaN", "", 0.0, -0.0, "nan"]),
    ),
    "note": st.one_of(texts, st.integers(0, 9), st.just({"a": 1})),
    "code": st.one_of(st.text("abc ", max_size=6), st.just("")),
    "placed": st.one_of(moments.map(_utc), st.just("2026-01-02T03:04:05"), st.just("infinity")),
    "seen": st.one_of(moments.map(_utc), st.just("2026-01-02 03:04:05+02"), st.just("")),
    "day": st.one_of(moments.map(lambda m: m.date().isoformat()), st.just("20260102")),
    "at": st.one_of(moments.map(lambda m: m.time().isoformat()), st.just("24:00:00")),
    "blob": st.one_of(st.binary(max_size=8).map(bytes.hex), st.just("0g")),
    "ident": st.one_of(
        st.uuids().map(str), st.just(""), st.just("{" + str(uuid.UUID(int=1)) + "}")
    ),
}
row_values = st.fixed_dictionaries(VALUE)


@st.composite
def records(draw: st.DrawFn, count: int, first_stamp: int) -> list[dict[str, Any]]:
    """Records of keys from a small set (a key may come twice), stamps all different."""
    stamps = draw(st.permutations(range(first_stamp, first_stamp + count)))
    made = []
    for stamp in stamps:
        region, no = draw(st.sampled_from(["EU", "US", "Ü 日"])), draw(st.integers(1, 4))
        deleted = draw(st.booleans()) and draw(st.booleans())
        root = {"region": region, "no": no, "label": draw(st.sampled_from(["", "x", "y "]))}
        lines = draw(st.lists(st.integers(1, 3), unique=True, max_size=3))
        made.append(
            {
                "OBJ": "ACCT",
                "TIMESTAMP": _utc(dt.datetime(2026, 1, 1) + dt.timedelta(seconds=stamp)),
                "PK1": region,
                "PK2": str(no),
                **({"DELETED": True} if deleted else {}),
                "DATA": {
                    "acct": [] if deleted else [{**root, **draw(row_values)}],
                    "acct_line": []
                    if deleted
                    else [
                        {"region": region, "no": no, "line": n, "qty": str(Decimal(n) / 4)}
                        for n in lines
                    ],
                },
            }
        )
    return made


def write_run(folder: Path, kind: str, run: int, created: str, lines: list[dict[str, Any]]) -> None:
    """An entity run as the format describes it: one gzip JSON Lines file, its manifest."""
    stamp = created[:19].replace("-", "").replace("T", "").replace(":", "")
    name = (
        f"INIT_EXPORT_ACCT_{run}_1_1_{stamp}.json.gz"
        if kind == "INIT_EXPORT"
        else f"INC_EXPORT_{run}_1_1_{stamp}.json.gz"
    )
    body = b"".join(_json_line(r) for r in lines)
    data = gzip.compress(body)
    (folder / name).write_bytes(data)
    manifest = {
        "format": 1,
        "kind": kind,
        "run": run,
        "created": created,
        "entities": ["ACCT"],
        "definitions": {"ACCT": {"tables": TABLES}},
        "threads": 1,
        "records_per_file": 0,
        "records": len(lines),
        "files": [
            {
                "name": name,
                "entity": "ACCT",
                "thread": 1,
                "seq": 1,
                "records": len(lines),
                "bytes": len(data),
                "sha1": hashlib.sha1(data).hexdigest(),
                "longest": max((len(line) + 1 for line in body.split(b"\n")), default=0),
            }
        ],
    }
    (folder / f"{kind}_{run}.manifest.json").write_text(json.dumps(manifest))


def _json_line(record: dict[str, Any]) -> bytes:
    """A record as one JSON line, its decimals as numbers with every digit."""
    text = json.dumps(record, default=lambda d: f"{DECIMAL}{d}{DECIMAL}", ensure_ascii=False)
    return re.sub(f'"{DECIMAL}(.*?){DECIMAL}"', r"\1", text).encode() + b"\n"


def loaded(location: Path, target: TargetDb, tmp_path: Path) -> str | list[tuple[Any, ...]]:
    """The load's error message, or every row of both tables (as text) and the versions."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "tidegate.toml").write_text(
        f'[source]\nurl = "sqlite:///{tmp_path / "unused.db"}"\ntimezone = "{ZONE}"\n'
        f'[output]\nlocation = "{location}"\n[target]\nurl = "{target.url}"\n'
    )
    config = tidegate.load_config(tmp_path / "tidegate.toml", [], environ={})
    try:
        result = api.load(config)
    except TidegateError as error:
        return str(error)
    engine = target.engine()
    with engine.connect() as conn:
        found: list[tuple[Any, ...]] = [("records applied", result.records)]
        for query in (
            "SELECT acct::text FROM acct ORDER BY region, no",
            "SELECT acct_line::text FROM acct_line ORDER BY region, no, line",
            "SELECT entity, key_sha1, stamp, pk FROM tidegate_entity_version ORDER BY 2",
        ):
            found += [tuple(row) for row in conn.exec_driver_sql(query)]
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(initial=records(12, 0), ongoing=records(8, 100), odd=st.booleans())
def test_sql_and_record_paths_leave_the_same_target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    initial: list[dict[str, Any]],
    ongoing: list[dict[str, Any]],
    odd: bool,
) -> None:
    if not odd:  # only the exporter's own forms: the SQL path must take the whole run
        initial = [r for r in initial if _exporter_form(r)]
        ongoing = [r for r in ongoing if _exporter_form(r)]
    work = tmp_path_factory.mktemp("runs")
    location = work / "exports"
    (location / "entities").mkdir(parents=True)
    write_run(location / "entities", "INIT_EXPORT", 1, "2026-01-01T00:00:00.000000Z", initial)
    write_run(location / "entities", "INC_EXPORT", 2, "2026-01-01T00:01:40.000000Z", ongoing)

    declined: list[str] = []
    original = entitysql.apply_run_sql

    def watched(*args: Any) -> Any:
        try:
            return original(*args)
        except (entitysql.Declined, sa.exc.DBAPIError) as error:
            declined.append(str(error))
            raise

    monkeypatch.setattr(entitysql, "apply_run_sql", watched)
    in_sql = loaded(location, make_target(request, "postgresql", work), work / "a")
    if not odd:
        assert not declined, declined
    monkeypatch.setattr(entitysql, "suited", lambda *_args: False)
    by_record = loaded(location, make_target(request, "postgresql", work), work / "b")
    assert in_sql == by_record


def _exporter_form(record: dict[str, Any]) -> bool:
    """Whether every value of the record is in the form tidegate's exporter writes."""
    for row in record["DATA"]["acct"]:
        for name, value in row.items():
            if name in VALUE and value not in ("", None) and not _written(name, value):
                return False
    return True


def _written(name: str, value: Any) -> bool:
    kind = VALUES[name]
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("smallint", "bigint"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind.startswith("numeric"):
        return isinstance(value, Decimal)
    if kind == "float":
        words = ("0", "-0", "Infinity", "-Infinity", "NaN")
        return (isinstance(value, float) and value != 0) or value in words
    if kind in ("timestamp", "timestamptz"):
        return isinstance(value, str) and value.endswith("Z")
    if kind == "date":
        return isinstance(value, str) and len(value) == 10
    if kind == "binary":
        return isinstance(value, str) and "g" not in value
    if kind == "uuid":
        return isinstance(value, str) and not value.startswith("{")
    if name == "code":
        return isinstance(value, str) and len(value) <= 5
    return isinstance(value, str)


def test_a_refused_value_is_named_as_the_record_path_names_it(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value no column of its type holds, in a run the SQL path takes up: the target's
    error sends the run to the record path, which names the file, the table and the
    column; the target holds nothing of the run."""
    location = tmp_path / "exports"
    (location / "entities").mkdir(parents=True)
    good = {"region": "EU", "no": 1, "label": "a", **dict.fromkeys(VALUES, "")}
    bad = {**good, "no": 2, "code": "toolong"}
    made = [
        {
            "OBJ": "ACCT",
            "TIMESTAMP": "2026-01-01T00:00:01.000000Z",
            "PK1": row["region"],
            "PK2": str(row["no"]),
            "DATA": {"acct": [row], "acct_line": []},
        }
        for row in (good, bad)
    ]
    write_run(location / "entities", "INIT_EXPORT", 1, "2026-01-01T00:00:00.000000Z", made)
    target = make_target(request, "postgresql", tmp_path)
    with caplog.at_level(logging.INFO, logger="tidegate.load.entityrun"):
        message = loaded(location, target, tmp_path)
    assert isinstance(message, str), message
    assert "INIT_EXPORT_ACCT_1_1_1" in message and "column 'code'" in message, message
    assert "INIT_EXPORT_1: applied record by record" in caplog.text
    with target.engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM acct").scalar() == 0


@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"])), min_size=1, max_size=5))
def test_the_version_key_is_the_text_json_dumps_writes(key: list[str]) -> None:
    """Existing targets hold versions keyed by the sha1 of `json.dumps` of the PK fields:
    the fast path for plain ASCII keys must write that very text."""
    pk, sha1 = version_key(key)
    assert pk == json.dumps(key)
    assert sha1 == hashlib.sha1(json.dumps(key).encode()).hexdigest()
