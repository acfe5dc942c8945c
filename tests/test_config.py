"""Tests of tidegate.config: defaults, file lookup, overrides, validation and error lines."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tidegate.config import (
    Config,
    EntityDefinition,
    SourceConfig,
    TablesConfig,
    default_config,
    format_duration,
    load_config,
    parse_duration,
    table_selected,
)
from tidegate.errors import ConfigError

DURATION_HINT = 'use a whole number and a unit s, m, h or d, such as "15m" or "1d"'


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, so that ./tidegate.toml is the test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(workdir: Path, text: str, *overrides: str) -> Config:
    """Writes ./tidegate.toml and loads it with no TIDEGATE_CONFIG in the environment."""
    (workdir / "tidegate.toml").write_text(text, encoding="utf-8")
    return load_config(overrides=overrides, environ={})


def error(workdir: Path, text: str, *overrides: str) -> ConfigError:
    """The ConfigError that loading ``text`` raises; also checks it is one clean line."""
    with pytest.raises(ConfigError) as caught:
        load(workdir, text, *overrides)
    exc = caught.value
    assert "\n" not in str(exc)
    assert "\n" not in exc.hint
    assert "pydantic" not in str(exc).lower()
    assert "Input should" not in str(exc)
    return exc


# --------------------------------------------------------------------------- defaults


def test_defaults_match_spec() -> None:
    config = default_config()
    assert config.origin == "defaults"
    assert config.source.url == "sqlite:///source.db"
    assert config.source.schema_ == ""
    assert config.source.timezone == "UTC"
    assert config.output.location == "exports"
    assert config.output.encoding == "utf-8"
    assert config.tables.include == ("*",)
    assert config.tables.exclude == ()
    assert config.tables.max_span == timedelta(days=1)
    assert dict(config.tables.time_columns) == {}
    assert config.entities.threads == 4
    assert config.entities.records_per_file == 0
    assert config.entities.file_prefix == ""
    assert config.entities.thread_limit == 0
    assert config.entities.auto_backlog is False
    assert dict(config.entities.define) == {}
    assert config.target.url == "sqlite:///target.db"
    assert config.schedule.tables is None
    assert config.schedule.ongoing is None
    assert config.schedule.load is None
    assert config.serve.host == "127.0.0.1"
    assert config.serve.port == 8765
    assert config.serve.token == ""
    assert config == Config()


def test_missing_default_file_means_defaults(workdir: Path) -> None:
    assert load_config(environ={}) == default_config()


def test_empty_file_means_defaults_with_origin(workdir: Path) -> None:
    config = load(workdir, "")
    assert config.model_dump(exclude={"origin"}) == default_config().model_dump(exclude={"origin"})
    assert config.origin == "tidegate.toml"  # the path as it was found, for messages


def test_json_dump_uses_file_syntax() -> None:
    dumped = default_config().model_dump(mode="json", by_alias=True)
    assert dumped["tables"]["max_span"] == "1d"
    assert dumped["schedule"]["tables"] == ""
    assert dumped["source"]["schema"] == ""


FULL = """
[source]
url = "postgresql://app@db.example/prod"
schema = "billing"
timezone = "Europe/Berlin"

[output]
location = "s3://bucket/prefix"
encoding = "cp1252"

[tables]
include = ["ci_*", "orders"]
exclude = ["*_tmp"]
max_span = "6h"
time_columns = { orders = "created_at", ci_acct = "upd_dttm" }

[entities]
threads = 8
records_per_file = 1000
file_prefix = "eu-1"
thread_limit = 50000
auto_backlog = true

[entities.define.ACCOUNT]
root = "ci_acct"
children = ["ci_acct_char", "ci_acct_per"]
export_class = "specialized"

[entities.define.PREMISE]
root = "ci_prem"

[target]
url = "duckdb:///warehouse.duckdb"

[schedule]
tables = "15m"
ongoing = "30s"
load = ""

[serve]
host = "0.0.0.0"
port = 9000
token = "s3cret"
"""


def test_full_file_parses(workdir: Path) -> None:
    config = load(workdir, FULL)
    assert config.source.url == "postgresql://app@db.example/prod"
    assert config.source.schema_ == "billing"
    assert str(config.source.tzinfo) == "Europe/Berlin"
    assert config.output.location == "s3://bucket/prefix"
    assert config.output.encoding == "cp1252"
    assert config.tables.include == ("ci_*", "orders")
    assert config.tables.exclude == ("*_tmp",)
    assert config.tables.max_span == timedelta(hours=6)
    assert dict(config.tables.time_columns) == {"orders": "created_at", "ci_acct": "upd_dttm"}
    assert config.entities.threads == 8
    assert config.entities.records_per_file == 1000
    assert config.entities.file_prefix == "eu-1"
    assert config.entities.thread_limit == 50000
    assert config.entities.auto_backlog is True
    assert config.entities.define == {
        "ACCOUNT": EntityDefinition(
            root="ci_acct", children=("ci_acct_char", "ci_acct_per"), export_class="specialized"
        ),
        "PREMISE": EntityDefinition(root="ci_prem"),
    }
    assert config.entities.define["PREMISE"].export_class == "generalized"
    assert config.target.url == "duckdb:///warehouse.duckdb"
    assert config.schedule.tables == timedelta(minutes=15)
    assert config.schedule.ongoing == timedelta(seconds=30)
    assert config.schedule.load is None
    assert config.serve.host == "0.0.0.0"
    assert config.serve.port == 9000
    assert config.serve.token == "s3cret"


def test_config_is_immutable(workdir: Path) -> None:
    config = load(workdir, FULL)
    with pytest.raises(ValidationError):
        config.entities.__setattr__("threads", 2)
    with pytest.raises(TypeError):
        config.tables.time_columns["x"] = "y"  # type: ignore[index]


def test_schema_alias_in_python() -> None:
    assert SourceConfig(schema="s").schema_ == "s"


# --------------------------------------------------------------------------- file lookup


def test_env_var_names_the_file(workdir: Path) -> None:
    other = workdir / "other.toml"
    other.write_text("[entities]\nthreads = 2\n", encoding="utf-8")
    (workdir / "tidegate.toml").write_text("[entities]\nthreads = 3\n", encoding="utf-8")
    config = load_config(environ={"TIDEGATE_CONFIG": str(other)})
    assert config.entities.threads == 2
    assert config.origin == str(other)


def test_explicit_path_beats_env_var(workdir: Path) -> None:
    explicit = workdir / "explicit.toml"
    explicit.write_text("[entities]\nthreads = 1\n", encoding="utf-8")
    env = workdir / "env.toml"
    env.write_text("[entities]\nthreads = 2\n", encoding="utf-8")
    config = load_config(explicit, environ={"TIDEGATE_CONFIG": str(env)})
    assert config.entities.threads == 1
    assert config.origin == str(explicit)


def test_empty_env_var_is_ignored(workdir: Path) -> None:
    config = load(workdir, "[entities]\nthreads = 5\n")
    assert config.entities.threads == 5
    assert load_config(environ={"TIDEGATE_CONFIG": ""}).entities.threads == 5


def test_explicit_path_not_found(workdir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("nope.toml", environ={})
    assert str(caught.value) == "nope.toml: config file not found"
    assert "--config" in caught.value.hint


def test_env_path_not_found(workdir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"TIDEGATE_CONFIG": "gone.toml"})
    assert str(caught.value) == "gone.toml: config file not found"
    assert "TIDEGATE_CONFIG" in caught.value.hint


def test_directory_is_an_error(workdir: Path) -> None:
    (workdir / "conf").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config("conf", environ={})
    assert str(caught.value) == "conf: is a directory, not a config file"


def test_not_utf8(workdir: Path) -> None:
    (workdir / "tidegate.toml").write_bytes(b'[source]\nschema = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(environ={})
    assert str(caught.value) == "tidegate.toml: not UTF-8 text (byte 0xe9 at line 2)"
    assert caught.value.hint == "save the file as UTF-8"


def test_byte_order_mark_is_accepted(workdir: Path) -> None:
    (workdir / "tidegate.toml").write_bytes(b"\xef\xbb\xbf[entities]\nthreads = 6\n")
    assert load_config(environ={}).entities.threads == 6


def test_invalid_toml(workdir: Path) -> None:
    exc = error(workdir, '[source]\nurl = "sqlite:///a.db"\nschema = billing\n')
    assert re.fullmatch(r"tidegate\.toml: invalid TOML at line 3, column \d+: .+", str(exc))
    assert exc.hint


# --------------------------------------------------------------------------- error lines


def test_invalid_duration(workdir: Path) -> None:
    exc = error(workdir, '[tables]\nmax_span = "1x"\n')
    assert str(exc) == "tidegate.toml: [tables] max_span: invalid duration '1x'"
    assert exc.hint == DURATION_HINT


def test_invalid_schedule_duration(workdir: Path) -> None:
    exc = error(workdir, '[schedule]\nongoing = "5 minutes"\n')
    assert str(exc) == "tidegate.toml: [schedule] ongoing: invalid duration '5 minutes'"
    assert exc.hint == DURATION_HINT + ', or "" for never'


def test_duration_of_wrong_type(workdir: Path) -> None:
    exc = error(workdir, "[tables]\nmax_span = 3600\n")
    assert (
        str(exc) == 'tidegate.toml: [tables] max_span: expected a duration such as "1d", got 3600'
    )


def test_unknown_key(workdir: Path) -> None:
    exc = error(workdir, '[tables]\nmax_spam = "1d"\n')
    assert str(exc) == "tidegate.toml: [tables] unknown key 'max_spam'"
    assert exc.hint == "did you mean 'max_span'?"


def test_unknown_key_with_nothing_close_lists_keys(workdir: Path) -> None:
    exc = error(workdir, "[serve]\nzzz = 1\n")
    assert str(exc) == "tidegate.toml: [serve] unknown key 'zzz'"
    assert exc.hint == "valid keys in [serve]: host, port, token"


def test_unknown_key_in_entity_definition(workdir: Path) -> None:
    exc = error(workdir, '[entities.define.ACCOUNT]\nroot = "a"\nchildern = []\n')
    assert str(exc) == "tidegate.toml: [entities.define.ACCOUNT] unknown key 'childern'"
    assert exc.hint == "did you mean 'children'?"


def test_unknown_section(workdir: Path) -> None:
    exc = error(workdir, "[tabels]\n")
    assert str(exc) == "tidegate.toml: unknown section [tabels]"
    assert exc.hint == "did you mean [tables]?"


def test_unknown_section_with_nothing_close(workdir: Path) -> None:
    exc = error(workdir, "[zzzz]\n")
    assert exc.hint.startswith("valid sections: [source], [output], [tables]")


def test_key_outside_any_section(workdir: Path) -> None:
    exc = error(workdir, "threads = 4\n")
    assert str(exc) == "tidegate.toml: unknown key 'threads' outside any section"
    assert exc.hint == "move it under [entities]"


def test_origin_is_not_a_toml_key(workdir: Path) -> None:
    exc = error(workdir, 'origin = "x"\n')
    assert str(exc) == "tidegate.toml: unknown key 'origin' outside any section"


def test_wrong_type(workdir: Path) -> None:
    exc = error(workdir, '[entities]\nthreads = "four"\n')
    assert str(exc) == "tidegate.toml: [entities] threads: expected an integer, got 'four'"
    assert exc.hint == "write a whole number without quotes, such as threads = 4"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[entities]\nthreads = true\n", "[entities] threads: expected an integer, got true"),
        ("[entities]\nthreads = 2.0\n", "[entities] threads: expected an integer, got 2.0"),
        ("[entities]\nauto_backlog = 1\n", "[entities] auto_backlog: expected true or false, got 1"),  # noqa: E501
        ('[output]\nlocation = ["a"]\n', "[output] location: expected a string, got an array"),
        ('[tables]\ninclude = "a*"\n', "[tables] include: expected an array, got 'a*'"),
        ("[tables]\ntime_columns = 3\n", "[tables] time_columns: expected a table, got 3"),
        ("[entities]\nthreads = 0\n", "[entities] threads: must be at least 1, got 0"),
        ("[entities]\nrecords_per_file = -1\n", "[entities] records_per_file: must be at least 0, got -1"),  # noqa: E501
        ("[entities]\nthreads = 5000\n", "[entities] threads: must be at most 1024, got 5000"),
        ("[serve]\nport = 70000\n", "[serve] port: must be at most 65535, got 70000"),
        ("[serve]\nport = 0\n", "[serve] port: must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_wrong_values(workdir: Path, text: str, line: str) -> None:
    assert str(error(workdir, text)) == f"tidegate.toml: {line}"


def test_secret_values_are_not_echoed(workdir: Path) -> None:
    exc = error(workdir, "[serve]\ntoken = 123456\n")
    assert str(exc) == "tidegate.toml: [serve] token: expected a string, got an integer"
    exc = error(workdir, '[source]\nurl = "postgresql//app:hunter2@db/x"\n')
    assert "hunter2" not in str(exc)
    assert str(exc).startswith("tidegate.toml: [source] url: not a database URL")


def test_secrets_in_overrides_are_masked(workdir: Path) -> None:
    exc = error(workdir, "", "source.url=postgresql://app:hunter2@db/x", "serve.port=0")
    assert str(exc) == "--set serve.port=0: [serve] port: must be at least 1, got 0"
    exc = error(workdir, "", "target.url=mysql://app:hunter2@db/x", "target.url=nope")
    assert str(exc).startswith("--set target.url=nope: [target] url: ")
    exc = error(workdir, "", "token=abc123")
    assert str(exc) == "--set token=***: expected section.key=value"
    assert exc.hint == "did you mean --set serve.token=***?"
    exc = error(workdir, "", "source.url=postgresql://app:hunter2@db/x", "source.timezone=Nope/X")
    assert "hunter2" not in str(exc)
    exc = error(workdir, "", "source.url=postgresql:/app:hunter2@db")
    assert str(exc) == (
        "--set source.url=postgresql:/app:***@db: [source] url: "
        "not a database URL (expected <dialect>://...)"
    )


def test_section_of_wrong_shape(workdir: Path) -> None:
    exc = error(workdir, 'tables = "x"\n')
    assert str(exc) == "tidegate.toml: [tables] expected a table, got 'x'"
    assert exc.hint == "write a [tables] header followed by key = value lines"


def test_section_header_with_value_is_invalid_toml(workdir: Path) -> None:
    assert str(error(workdir, "[tables] = 3\n")).startswith("tidegate.toml: invalid TOML at line 1")


def test_entity_of_wrong_shape(workdir: Path) -> None:
    exc = error(workdir, "[entities.define]\nACCOUNT = 3\n")
    assert str(exc) == "tidegate.toml: [entities] define.ACCOUNT: expected a table, got 3"


def test_nested_key_error(workdir: Path) -> None:
    exc = error(workdir, '[entities.define.ACCOUNT]\nroot = "a"\nexport_class = "full"\n')
    assert str(exc) == (
        "tidegate.toml: [entities.define.ACCOUNT] export_class: "
        "must be 'generalized', 'specialized' or 'none', got 'full'"
    )
    assert exc.hint == 'such as export_class = "generalized"'


def test_missing_entity_root(workdir: Path) -> None:
    exc = error(workdir, '[entities.define.ACCOUNT]\nchildren = ["x"]\n')
    assert str(exc) == "tidegate.toml: [entities.define.ACCOUNT] root: required key is missing"


def test_entity_children_checks(workdir: Path) -> None:
    exc = error(workdir, '[entities.define.A]\nroot = "a"\nchildren = ["b", "b"]\n')
    assert str(exc) == "tidegate.toml: [entities.define.A] children: lists 'b' twice"
    exc = error(workdir, '[entities.define.A]\nroot = "a"\nchildren = ["a"]\n')
    assert str(exc) == "tidegate.toml: [entities.define.A] children: lists the root table 'a'"


def test_time_columns_entry_error(workdir: Path) -> None:
    exc = error(workdir, '[tables]\ntime_columns = { orders = "" }\n')
    assert str(exc) == "tidegate.toml: [tables] time_columns.orders: must not be empty"


def test_invalid_entity_name(workdir: Path) -> None:
    exc = error(workdir, '[entities.define."MY ACCOUNT"]\nroot = "a"\n')
    assert str(exc) == "tidegate.toml: [entities] define: invalid entity name 'MY ACCOUNT'"


@pytest.mark.parametrize("prefix", ["a_b", "a b", "a/b", "ä"])
def test_invalid_file_prefix(workdir: Path, prefix: str) -> None:
    exc = error(workdir, f'[entities]\nfile_prefix = "{prefix}"\n')
    assert str(exc).startswith("tidegate.toml: [entities] file_prefix: may contain only letters")


def test_invalid_encoding(workdir: Path) -> None:
    exc = error(workdir, '[output]\nencoding = "base64"\n')
    assert str(exc) == "tidegate.toml: [output] encoding: unknown text encoding 'base64'"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "/etc/passwd", "../x"])
def test_invalid_timezone(workdir: Path, zone: str) -> None:
    exc = error(workdir, f'[source]\ntimezone = "{zone}"\n')
    assert str(exc) == f"tidegate.toml: [source] timezone: unknown time zone {zone!r}"


@pytest.mark.parametrize("url", ["", "sqlite:source.db", "source.db"])
def test_invalid_url(workdir: Path, url: str) -> None:
    exc = error(workdir, f'[target]\nurl = "{url}"\n')
    assert str(exc).startswith("tidegate.toml: [target] url: ")


# --------------------------------------------------------------------------- overrides


def test_overrides_beat_the_file(workdir: Path) -> None:
    config = load(
        workdir,
        FULL,
        "source.url=postgresql://x/y",
        "tables.max_span=2h",
        "entities.threads=16",
        'tables.include=["a*","b"]',
        "entities.auto_backlog=false",
        'schedule.tables=""',
        "serve.token=1234",
        "entities.define.ACCOUNT.export_class=none",
        "tables.time_columns.orders=updated_at",
    )
    assert config.source.url == "postgresql://x/y"
    assert config.tables.max_span == timedelta(hours=2)
    assert config.entities.threads == 16
    assert config.tables.include == ("a*", "b")
    assert config.entities.auto_backlog is False
    assert config.schedule.tables is None
    assert config.serve.token == "1234"
    assert config.entities.define["ACCOUNT"].export_class == "none"
    assert config.entities.define["ACCOUNT"].root == "ci_acct"
    assert config.tables.time_columns["orders"] == "updated_at"
    assert config.tables.time_columns["ci_acct"] == "upd_dttm"


def test_overrides_without_file(workdir: Path) -> None:
    config = load_config(overrides=["entities.threads=2"], environ={})
    assert config.entities.threads == 2
    assert config.origin == "defaults"


def test_empty_override_value_is_empty_string(workdir: Path) -> None:
    config = load(
        workdir, '[schedule]\nload = "1h"\ntables = "1h"\n', "schedule.load=", 'schedule.tables=""'
    )
    assert config.schedule.load is None
    assert config.schedule.tables is None


def test_later_override_wins(workdir: Path) -> None:
    config = load_config(overrides=["serve.port=1", "serve.port=2"], environ={})
    assert config.serve.port == 2


@pytest.mark.parametrize(
    ("override", "line", "hint"),
    [
        ("entities.threads", "expected section.key=value", "such as --set entities.threads=8"),
        ("threads=8", "expected section.key=value", "did you mean --set entities.threads=8?"),
        ("source.=x", "expected section.key=value", "such as --set entities.threads=8"),
        ("tabels.include=[]", "unknown section [tabels]", "did you mean [tables]?"),
        ("tables.max_spam=2h", "[tables] unknown key 'max_spam'", "did you mean 'max_span'?"),
        ("entities.define.A.rot=x", "[entities.define.A] unknown key 'rot'", "did you mean 'root'?"),  # noqa: E501
        ("serve.port.x=1", "[serve] port: has no key 'x'", "write --set serve.port=value"),
    ],
)  # fmt: skip
def test_malformed_override(workdir: Path, override: str, line: str, hint: str) -> None:
    exc = error(workdir, "", override)
    assert str(exc) == f"--set {override}: {line}"
    assert hint in exc.hint


def test_invalid_override_value_is_blamed_on_the_override(workdir: Path) -> None:
    exc = error(workdir, FULL, "tables.max_span=1x")
    assert str(exc) == "--set tables.max_span=1x: [tables] max_span: invalid duration '1x'"
    assert exc.hint == DURATION_HINT
    exc = error(workdir, FULL, "entities.threads=four")
    assert str(exc) == (
        "--set entities.threads=four: [entities] threads: expected an integer, got 'four'"
    )
    exc = error(workdir, FULL, 'tables.include=["ok", "cust[omer"]')
    assert str(exc).startswith('--set tables.include=["ok", "cust[omer"]: [tables] include: ')


def test_override_creating_an_entity_without_root(workdir: Path) -> None:
    exc = error(workdir, "", "entities.define.NEW.children=[]")
    assert str(exc) == (
        "--set entities.define.NEW.children=[]: [entities.define.NEW] root: required key is missing"
    )


def test_file_error_is_blamed_on_the_file_despite_overrides(workdir: Path) -> None:
    exc = error(workdir, "[entities]\nthreads = 0\n", "entities.records_per_file=5")
    assert str(exc) == "tidegate.toml: [entities] threads: must be at least 1, got 0"


# --------------------------------------------------------------------------- durations


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]))
def test_duration_round_trip(n: int, unit: str) -> None:
    text = f"{n}{unit}"
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    duration = parse_duration(text)
    assert duration == timedelta(seconds=n * size)
    written = format_duration(duration)
    assert parse_duration(written) == duration
    # format_duration picks the largest exact unit, so the text comes back unless a larger
    # unit fits (60s is written "1m").
    larger = {"s": 60, "m": 60, "h": 24, "d": None}[unit]
    if larger is None or n % larger:
        assert written == text


@pytest.mark.parametrize(
    "text", ["1x", "0d", "-1h", "d", "1.5h", "", "1 h", " 1h", "1H", "1h30m", "١h", "+1h"]
)
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_huge_duration_is_invalid() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999d")


@pytest.mark.parametrize("duration", [timedelta(0), timedelta(seconds=-5), timedelta(seconds=1.5)])
def test_format_duration_rejects(duration: timedelta) -> None:
    with pytest.raises(ValueError):
        format_duration(duration)


def test_format_duration_examples() -> None:
    assert format_duration(timedelta(hours=24)) == "1d"
    assert format_duration(timedelta(seconds=90)) == "90s"
    assert format_duration(timedelta(minutes=90)) == "90m"


# --------------------------------------------------------------------------- globs and tables


@pytest.mark.parametrize("pattern", ["cust[omer", "[", "a[!", "a[]"])
def test_unclosed_bracket_glob(workdir: Path, pattern: str) -> None:
    exc = error(workdir, f'[tables]\nexclude = ["ok", "{pattern}"]\n')
    assert str(exc) == (
        f"tidegate.toml: [tables] exclude: invalid glob {pattern!r}: '[' is never closed by ']'"
    )
    assert exc.hint == "write '[[]' to match a literal '['"


def test_empty_glob(workdir: Path) -> None:
    exc = error(workdir, '[tables]\ninclude = [""]\n')
    assert str(exc) == "tidegate.toml: [tables] include: a glob pattern must not be empty"


@pytest.mark.parametrize("pattern", ["[[]x", "a[!b]c", "[]]", "[!]]", "ci_*", "?x", "]"])
def test_valid_globs(pattern: str) -> None:
    assert TablesConfig(include=(pattern,)).include == (pattern,)


def test_table_selection() -> None:
    tables = TablesConfig(include=("ci_*", "orders"), exclude=("*_tmp", "ci_secret"))
    assert tables.selects("ci_acct")
    assert tables.selects("orders")
    assert not tables.selects("customers")
    assert not tables.selects("ci_acct_tmp")  # exclude wins over include
    assert not tables.selects("ci_secret")
    assert not tables.selects("CI_ACCT")  # case-sensitive


def test_own_tables_are_never_selected() -> None:
    tables = TablesConfig()
    assert tables.selects("anything")
    assert not tables.selects("tidegate_audit")
    assert not tables.selects("TIDEGATE_AUDIT")
    assert not table_selected("tidegate_runs", ["tidegate_*"], [])
    assert table_selected("my_tidegate_x", ["*"], [])


def test_empty_include_selects_nothing() -> None:
    assert not table_selected("orders", [], [])


def test_environment_variables_set_keys_between_the_file_and_set(tmp_path: Path) -> None:
    """File < TIDEGATE_<SECTION>__<KEY> < --set; keys below a key keep their case."""
    path = tmp_path / "tidegate.toml"
    path.write_text('[source]\nurl = "sqlite:///file.db"\n[entities]\nthreads = 2\n')
    environ = {
        "TIDEGATE_SOURCE__URL": "sqlite:///env.db",
        "TIDEGATE_ENTITIES__THREADS": "6",
        "TIDEGATE_TABLES__TIME_COLUMNS__Orders": "placed",
        "TIDEGATE_CONFIG": "",
        "TIDEGATEX": "ignored",
    }
    config = load_config(path, ["entities.threads=8"], environ=environ)
    assert config.source.url == "sqlite:///env.db"
    assert config.entities.threads == 8
    assert dict(config.tables.time_columns) == {"Orders": "placed"}


def test_storage_options_from_the_file_or_the_environment_and_their_secrets(
    tmp_path: Path,
) -> None:
    """An inline table, in the file or in TIDEGATE_OUTPUT__STORAGE_OPTIONS; its secret
    values (key, secret, …) are among the texts no page may show, its others are not."""
    path = tmp_path / "tidegate.toml"
    path.write_text(
        '[source]\nurl = "sqlite:///file.db"\n[output]\nlocation = "s3://b/p"\n'
        'storage_options = { endpoint_url = "http://minio:9000", key = "AKIA-1", '
        'secret = "s3cr3t" }\n'
    )
    config = load_config(path, environ={})
    assert config.output.storage_options["endpoint_url"] == "http://minio:9000"
    assert set(config.secrets()) == {"AKIA-1", "s3cr3t"}
    from_env = load_config(
        path,
        environ={"TIDEGATE_OUTPUT__STORAGE_OPTIONS": '{ client_kwargs = { region_name = "eu" } }'},
    )
    assert from_env.output.storage_options == {"client_kwargs": {"region_name": "eu"}}


def test_a_bad_environment_value_names_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "tidegate.toml"
    path.write_text('[source]\nurl = "sqlite:///file.db"\n')
    with pytest.raises(ConfigError) as bad:
        load_config(path, environ={"TIDEGATE_ENTITIES__THREADS": "many"})
    assert bad.value.message.startswith("environment variable TIDEGATE_ENTITIES__THREADS: ")
    with pytest.raises(ConfigError) as unknown:
        load_config(path, environ={"TIDEGATE_SOURCE__URLL": "x"})
    assert unknown.value.message.startswith("environment variable TIDEGATE_SOURCE__URLL: ")
    assert "url" in (unknown.value.hint or "")


def test_iceberg_catalog_properties_from_the_file_overrides_or_the_environment(
    tmp_path: Path,
) -> None:
    """[target.iceberg]: dotted names quoted or not, from --set or the environment, kept
    as pyiceberg names them; values naming a secret are among the texts no page may show,
    and are masked in messages. [target] schema and [target.iceberg] need an Iceberg URL."""
    path = tmp_path / "tidegate.toml"
    path.write_text(
        '[source]\nurl = "sqlite:///file.db"\n[target]\nurl = "iceberg:////srv/lake"\n'
        'schema = "sales"\n[target.iceberg]\ntype = "rest"\n"s3.endpoint" = "http://s3"\n'
        's3.secret-access-key = "s3cr3t"\n'
    )
    config = load_config(
        path,
        ["target.iceberg.credential=id:pa55"],
        environ={"TIDEGATE_TARGET__ICEBERG__uri": "https://catalog"},
    )
    assert config.target.schema_ == "sales"
    assert dict(config.target.iceberg) == {
        "type": "rest",
        "s3.endpoint": "http://s3",
        "s3.secret-access-key": "s3cr3t",
        "credential": "id:pa55",
        "uri": "https://catalog",
    }
    assert set(config.secrets()) == {"s3cr3t", "id:pa55"}
    with pytest.raises(ConfigError) as refused:
        load_config(path, ["target.url=sqlite:///t.db"], environ={})
    assert "for an Iceberg target" in refused.value.message
    exc = error(tmp_path, "", "target.iceberg.token=t0ken", "serve.port=0")
    assert "t0ken" not in str(exc)
