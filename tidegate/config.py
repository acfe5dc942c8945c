"""tidegate's configuration: the ``tidegate.toml`` file, its defaults and its validation.

The file is looked for at an explicit path (``--config``), else at ``$TIDEGATE_CONFIG``, else
at ``./tidegate.toml``; when that last one is missing every default applies. Environment
variables (``TIDEGATE_<SECTION>__<KEY>=value``) and then command-line overrides (``--set
section.key=value``) are merged over the file before validation, so a bad one is reported
exactly like a bad key in the file, naming the variable or the ``--set`` it came from. (The
variables go through the ``--set`` machinery rather than pydantic-settings: one reading of
values, one wording of errors, and the file's validation unchanged.)

Every problem becomes one :class:`~tidegate.errors.ConfigError` whose message is a single line
``<file>: [<section>] <key>: <what is wrong>`` and whose hint says how to fix it. pydantic does
the checking, but its messages never reach the user: they are translated here.

Database URLs stay plain strings; drivers and connectivity are the database layer's business,
so this module imports no database code.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WrapSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from tidegate.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "Config",
    "EntitiesConfig",
    "EntityDefinition",
    "ExportClass",
    "OutputConfig",
    "ScheduleConfig",
    "ServeConfig",
    "SourceConfig",
    "TablesConfig",
    "TargetConfig",
    "default_config",
    "format_duration",
    "load_config",
    "parse_duration",
    "table_selected",
]

SECRET_STORAGE_OPTIONS = frozenset(
    {"secret", "key", "token", "password", "session_token", "account_key", "sas_token"}
)
CONFIG_ENV_VAR = "TIDEGATE_CONFIG"
ENV_PREFIX = "TIDEGATE_"  # TIDEGATE_<SECTION>__<KEY>: `environment_overrides`
DEFAULT_CONFIG_FILE = "tidegate.toml"

ExportClass = Literal["generalized", "specialized", "none"]

# A config file is a few hundred bytes; the cap only keeps a wrong path (a dump, a device)
# from being read whole into memory.
_MAX_FILE_BYTES = 1024 * 1024

_OWN_TABLE_PREFIX = "tidegate_"

_DURATION_RE = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_HINT = 'use a whole number and a unit s, m, h or d, such as "15m" or "1d"'
_SCHEDULE_HINT = _DURATION_HINT + ', or "" for never'

# ASCII only on purpose: both end up in file names and identifiers read by other tools.
_FILE_PREFIX_RE = re.compile(r"[A-Za-z0-9-]*")
_ENTITY_NAME_RE = re.compile(r"[A-Za-z0-9_]+")

# Values of these keys may hold passwords or tokens, so messages never echo them.
_SECRET_KEYS = frozenset({"url", "token"})


class _Invalid(ValueError):
    """A value is wrong; carries the one-line ``what`` and the ``hint`` for ConfigError."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(f"{what}: {hint}" if hint else what)
        self.what = what
        self.hint = hint


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> timedelta:
    """Parses a duration written as a positive whole number and a unit s, m, h or d.

    Args:
        text: such as ``"30s"``, ``"15m"``, ``"1h"`` or ``"1d"``.

    Returns:
        The duration.

    Raises:
        ValueError: ``text`` is not of that form (``"1x"``, ``"0d"``, ``"-1h"``, ``"1.5h"``).
    """
    match = _DURATION_RE.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise _Invalid(f"invalid duration {text!r}", _DURATION_HINT)
    try:
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise _Invalid(f"invalid duration {text!r}: too long", _DURATION_HINT) from None


def format_duration(duration: timedelta) -> str:
    """Writes a duration in the form :func:`parse_duration` reads, in the largest exact unit.

    Args:
        duration: a positive whole number of seconds.

    Returns:
        Such as ``"90s"``, ``"15m"`` or ``"1d"``; ``timedelta(hours=24)`` gives ``"1d"``.

    Raises:
        ValueError: ``duration`` is not positive or has a fraction of a second.
    """
    if duration <= timedelta(0) or duration.microseconds:
        raise ValueError(f"{duration!r} is not a positive whole number of seconds")
    seconds = duration.days * 86400 + duration.seconds
    for unit, size in _UNIT_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds has unit s")


def _to_duration(value: object) -> timedelta:
    return _duration_from(value, _DURATION_HINT)


def _duration_from(value: object, hint: str) -> timedelta:
    if isinstance(value, timedelta):
        # Python callers may pass a timedelta; it must still be writable back as text.
        try:
            format_duration(value)
        except ValueError:
            raise _Invalid("must be a positive whole number of seconds", hint) from None
        return value
    if not isinstance(value, str):
        raise _Invalid(f'expected a duration such as "1d", got {_show(value)}', hint)
    try:
        return parse_duration(value)
    except _Invalid as exc:
        raise _Invalid(exc.what, hint) from None


def _to_optional_duration(value: object) -> timedelta | None:
    if value is None or value == "":
        return None
    return _duration_from(value, _SCHEDULE_HINT)


def _format_optional_duration(value: timedelta | None) -> str:
    return "" if value is None else format_duration(value)


# Durations dump to JSON as the text the file uses ("1d"), not as ISO 8601 ("P1D").
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
OptionalDuration = Annotated[
    timedelta | None,
    BeforeValidator(_to_optional_duration),
    PlainSerializer(_format_optional_duration, return_type=str, when_used="json"),
]


# --------------------------------------------------------------------------- value checks


def _nonempty(hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if not value.strip():
            raise _Invalid("must not be empty", hint)
        return value

    return AfterValidator(check)


def _check_url(value: str) -> str:
    # The value is not echoed: a URL may carry a password.
    if "://" not in value:
        raise _Invalid(
            "not a database URL (expected <dialect>://...)",
            'write a SQLAlchemy URL such as "sqlite:///source.db" or '
            '"postgresql://user@host/dbname"',
        )
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, LookupError, OSError):
        raise _Invalid(
            f"unknown time zone {value!r}", 'use an IANA zone name such as "UTC" or "Europe/Berlin"'
        ) from None
    return value


def _check_encoding(value: str) -> str:
    # str.encode, unlike codecs.lookup alone, also refuses bytes-to-bytes codecs (base64).
    try:
        "".encode(value)
    except LookupError:
        raise _Invalid(
            f"unknown text encoding {value!r}",
            'use a Python codec name such as "utf-8", "utf-8-sig" or "cp1252"',
        ) from None
    return value


def _glob_problem(pattern: str) -> str | None:
    """Says what is wrong with an fnmatch pattern, or None; mirrors fnmatch.translate."""
    if not pattern:
        return "a glob pattern must not be empty"
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                # fnmatch would silently match a literal '[', which is never what was meant.
                return f"invalid glob {pattern!r}: '[' is never closed by ']'"
            i = j + 1
    return None


def _check_glob(pattern: str) -> str:
    problem = _glob_problem(pattern)
    if problem is not None:
        hint = (
            'remove the empty string, or use "*" to match every table'
            if not pattern
            else "write '[[]' to match a literal '['"
        )
        raise _Invalid(problem, hint)
    return pattern


def _check_file_prefix(value: str) -> str:
    if _FILE_PREFIX_RE.fullmatch(value) is None:
        raise _Invalid(
            f"may contain only letters, digits and '-', got {value!r}",
            "it becomes part of export file names, where '_' separates the fields",
        )
    return value


_K = TypeVar("_K")
_V = TypeVar("_V")


def _freeze(value: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(dict(value))


def _serialize_mapping(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    # A mappingproxy is dumped as the dict it wraps, so pydantic serializes it without warnings.
    return handler(dict(value))


def _empty_mapping() -> Mapping[Any, Any]:
    return MappingProxyType({})


NonEmptyStr = Annotated[StrictStr, _nonempty("give a value, or remove the key")]
DatabaseUrl = Annotated[
    StrictStr, _nonempty("give a SQLAlchemy URL, or remove the key"), AfterValidator(_check_url)
]
Glob = Annotated[StrictStr, AfterValidator(_check_glob)]
TableName = Annotated[StrictStr, _nonempty("give a table name")]


# --------------------------------------------------------------------------- models

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(BaseModel):
    """``[source]``: the database tidegate exports from.

    Attributes:
        url: SQLAlchemy URL of the source database.
        schema_: schema to read (PostgreSQL); empty means the default. TOML key ``schema``.
        timezone: IANA zone of naive timestamp columns in the source.
    """

    model_config = _FROZEN

    url: DatabaseUrl = "sqlite:///source.db"
    # Aliased because a field named "schema" would shadow BaseModel.schema.
    schema_: StrictStr = Field(default="", alias="schema")
    timezone: Annotated[StrictStr, AfterValidator(_check_timezone)] = "UTC"

    @property
    def tzinfo(self) -> ZoneInfo:
        """The zone of naive timestamp columns, as a tzinfo."""
        return ZoneInfo(self.timezone)


class OutputConfig(BaseModel):
    """``[output]``: where exports are written.

    Attributes:
        location: a directory, or an fsspec URL such as ``s3://bucket/prefix``.
        encoding: character encoding of table-export CSV files.
        storage_options: passed to the location's fsspec filesystem as it is made (for
            S3: ``endpoint_url``, ``client_kwargs = {region_name = "…"}``, ``key`` and
            ``secret``; credentials are better left to the environment).
    """

    model_config = _FROZEN

    location: NonEmptyStr = "exports"
    encoding: Annotated[StrictStr, AfterValidator(_check_encoding)] = "utf-8"
    storage_options: dict[str, Any] = Field(default_factory=dict)


def table_selected(name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Says whether table export takes a table.

    Args:
        name: the table's name.
        include: glob patterns; the table must match one.
        exclude: glob patterns; a table matching one is left out even if included.

    Returns:
        True when selected. Tables whose name starts with ``tidegate_`` (in any case) are
        tidegate's own and never selected.
    """
    if name.lower().startswith(_OWN_TABLE_PREFIX):
        return False
    # fnmatchcase: the same config must select the same tables on every operating system.
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude):
        return False
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in include)


class TablesConfig(BaseModel):
    """``[tables]``: table export.

    Attributes:
        include: glob patterns of table names to export.
        exclude: glob patterns of table names to leave out; they win over ``include``.
        max_span: most data time that one export folder may cover.
        time_columns: table name -> column holding the row's data time.
        keys: table name -> the columns that identify its rows, for a table without a
            primary key (their values must be unique, as a key's).
    """

    model_config = _FROZEN

    include: tuple[Glob, ...] = ("*",)
    exclude: tuple[Glob, ...] = ()
    max_span: Duration = timedelta(days=1)
    time_columns: Annotated[
        Mapping[StrictStr, TableName],
        AfterValidator(_freeze),
        WrapSerializer(_serialize_mapping),
    ] = Field(default_factory=_empty_mapping)
    keys: Annotated[
        Mapping[StrictStr, tuple[TableName, ...]],
        AfterValidator(_freeze),
        WrapSerializer(_serialize_mapping),
    ] = Field(default_factory=_empty_mapping)

    @field_validator("time_columns", "keys")
    @classmethod
    def _table_names_not_empty(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        if any(not table.strip() for table in value):
            raise _Invalid(
                "a table name must not be empty", 'name each table, such as orders = "created_at"'
            )
        return value

    @field_validator("keys")
    @classmethod
    def _keys_not_empty(cls, value: Mapping[str, tuple[str, ...]]) -> Mapping[str, Any]:
        for table, columns in value.items():
            if not columns:
                raise _Invalid(
                    f"the key of table {table!r} names no column",
                    'name its columns, such as history = ["tid", "mtime"]',
                )
        return value

    def selects(self, name: str) -> bool:
        """Says whether table export takes the table ``name``; see :func:`table_selected`."""
        return table_selected(name, self.include, self.exclude)


class EntityDefinition(BaseModel):
    """``[entities.define.<NAME>]``: an entity given by hand instead of discovered.

    Attributes:
        root: the root table.
        children: child tables, whose primary key begins with a foreign key to the root's.
        export_class: ``generalized`` can be exported; ``specialized`` and ``none`` are
            listed but refused.
    """

    model_config = _FROZEN

    root: TableName
    children: tuple[TableName, ...] = ()
    export_class: ExportClass = "generalized"

    @field_validator("children")
    @classmethod
    def _children_distinct(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        root = info.data.get("root")
        if root is not None and root in value:
            raise _Invalid(f"lists the root table {root!r}", "list only the child tables")
        seen: set[str] = set()
        for child in value:
            if child in seen:
                raise _Invalid(f"lists {child!r} twice", "list each child table once")
            seen.add(child)
        return value


class EntitiesConfig(BaseModel):
    """``[entities]``: entity export.

    Attributes:
        threads: workers an initial export of one entity is split across.
        records_per_file: records per file; 0 means one file per thread.
        file_prefix: put into initial-export file names; letters, digits and '-' only.
        thread_limit: cap on records a thread exports in one ongoing run; 0 means no cap.
        auto_backlog: start another ongoing run at once while a backlog remains.
        define: entity name -> definition; empty means entities are discovered.
    """

    model_config = _FROZEN

    # The cap keeps a typo from starting millions of threads; no run writes over ~500 files.
    threads: StrictInt = Field(default=4, ge=1, le=1024)
    records_per_file: StrictInt = Field(default=0, ge=0)
    file_prefix: Annotated[StrictStr, AfterValidator(_check_file_prefix)] = ""
    thread_limit: StrictInt = Field(default=0, ge=0)
    auto_backlog: StrictBool = False
    define: Annotated[
        Mapping[StrictStr, EntityDefinition],
        AfterValidator(_freeze),
        WrapSerializer(_serialize_mapping),
    ] = Field(default_factory=_empty_mapping)

    @field_validator("define")
    @classmethod
    def _entity_names(cls, value: Mapping[str, EntityDefinition]) -> Mapping[str, EntityDefinition]:
        for name in value:
            if _ENTITY_NAME_RE.fullmatch(name) is None:
                raise _Invalid(
                    f"invalid entity name {name!r}",
                    "entity names may contain only letters, digits and '_'",
                )
        return value


def _flat_properties(value: Any) -> Any:
    """Catalog properties as pyiceberg names them (``s3.endpoint``): TOML reads an unquoted
    dotted key, and ``--set target.iceberg.s3.endpoint=…`` sets one, as a nested table."""
    if not isinstance(value, Mapping):
        return value
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update({f"{key}.{inner}": v for inner, v in _flat_properties(item).items()})
        else:
            flat[str(key)] = item
    return flat


class TargetConfig(BaseModel):
    """``[target]``: the database or Iceberg warehouse ``tidegate load`` writes to.

    Attributes:
        url: SQLAlchemy URL of the target database, or ``iceberg:///<dir>``.
        schema: an Iceberg target's namespace (``tidegate`` when empty).
        iceberg: ``[target.iceberg]``, pyiceberg catalog properties added to (and
            overriding) those of the local SQL catalog: ``type = "rest"`` and ``uri`` for a
            REST catalog, ``warehouse = "s3://…"`` and ``s3.*`` for object storage.
    """

    model_config = _FROZEN

    url: DatabaseUrl = "sqlite:///target.db"
    schema_: StrictStr = Field(default="", alias="schema")
    iceberg: Annotated[Mapping[StrictStr, StrictStr], BeforeValidator(_flat_properties)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _iceberg_settings_need_iceberg(self) -> TargetConfig:
        if (self.schema_ or self.iceberg) and not self.url.startswith("iceberg:"):
            raise _Invalid(
                "schema and [target.iceberg] are for an Iceberg target, and url is not one",
                'set url = "iceberg:///<dir>", or remove them (a database target\'s schema '
                "is its URL's)",
            )
        return self


class CaptureConfig(BaseModel):
    """``[capture]``: how long tidegate's records in the source are kept.

    Attributes:
        keep: exported changes and run records older than this are removed by export runs;
            ``--reexport-since`` reaches back no further.
    """

    model_config = _FROZEN

    keep: Duration = timedelta(days=7)


class ScheduleConfig(BaseModel):
    """``[schedule]``: how often ``tidegate serve`` starts each job; None means never.

    Attributes:
        tables: interval of table-export runs.
        ongoing: interval of ongoing entity-export runs.
        load: interval of loads into the target.
    """

    model_config = _FROZEN

    tables: OptionalDuration = None
    ongoing: OptionalDuration = None
    load: OptionalDuration = None


class ServeConfig(BaseModel):
    """``[serve]``: the dashboard's listening address.

    Attributes:
        host: address to listen on.
        port: TCP port, 1 to 65535.
        token: token every request must carry; ``tidegate serve`` requires one when the host
            is not a loopback address (it checks that, since ``--host`` may change the host).
    """

    model_config = _FROZEN

    host: NonEmptyStr = "127.0.0.1"
    port: StrictInt = Field(default=8765, ge=1, le=65535)
    token: StrictStr = ""


class Config(BaseModel):
    """The whole configuration: one attribute per TOML section, plus where it came from.

    Attributes:
        origin: the path of the file read, as given, or ``"defaults"`` when no file was read.
    """

    model_config = _FROZEN

    source: SourceConfig = Field(default_factory=SourceConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    entities: EntitiesConfig = Field(default_factory=EntitiesConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    origin: str = "defaults"

    def secrets(self) -> tuple[str, ...]:
        """The passwords in the source and target URLs, the serve token and any secret
        among the storage options: texts that no page or API answer may show."""
        passwords = [urlsplit(url).password or "" for url in (self.source.url, self.target.url)]
        decoded = [unquote(password) for password in passwords]  # as a driver would show it
        stored = [
            str(value)
            for key, value in self.output.storage_options.items()
            if key in SECRET_STORAGE_OPTIONS and value
        ]
        stored += [v for key, v in self.target.iceberg.items() if _secret_key(key) and v]
        return tuple(
            dict.fromkeys(s for s in (*passwords, *decoded, self.serve.token, *stored) if s)
        )


def _section_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for name, field in Config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            models[name] = field.annotation
    return models


_SECTIONS = _section_models()


def _keys(model: type[BaseModel]) -> list[str]:
    """The TOML keys of a section, in the documented order."""
    return [field.alias or name for name, field in model.model_fields.items()]


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def default_config() -> Config:
    """Every default, as if no file and no override were given; origin is ``"defaults"``."""
    return Config(origin="defaults")


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Reads, merges and validates the configuration.

    Args:
        path: the file to read (``--config``). Without it, ``$TIDEGATE_CONFIG`` if set and
            non-empty, else ``tidegate.toml`` in the current directory.
        overrides: ``"section.key=value"`` texts (``--set``), applied in order over the
            file. The value is read as a TOML value when it is one (``8``, ``true``,
            ``["a*", "b"]``, ``"x"``), else taken as a plain string; for a key that holds a
            string the plain text is always kept, so ``serve.token=1234`` stays a string.
        environ: the environment to look ``TIDEGATE_CONFIG`` and the
            ``TIDEGATE_<SECTION>__<KEY>`` variables up in (`environment_overrides`: over
            the file, under ``overrides``); ``os.environ`` if None.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file named by ``path`` or ``TIDEGATE_CONFIG`` does not exist or
            cannot be read, is not UTF-8 or not TOML, or a key, value or override is invalid.
            A missing ``./tidegate.toml`` is not an error: every default then applies.
    """
    env = os.environ if environ is None else environ
    env_path = env.get(CONFIG_ENV_VAR, "")
    if path is not None:
        label = os.fspath(path)
        missing_hint = "check the path given with --config"
        required = True
    elif env_path:
        label = env_path
        missing_hint = f"{CONFIG_ENV_VAR} names this file: correct it, or unset it"
        required = True
    else:
        label = DEFAULT_CONFIG_FILE
        missing_hint = ""
        required = False
    file = Path(label)

    data = _read_toml(file, label, required, missing_hint)
    origin = "defaults" if data is None else str(file)
    if data is None:
        data = {}

    # Which override set or created each path, so that errors are blamed on the right one.
    # The environment's come first: a --set of the same key wins.
    origins: dict[tuple[str, ...], str] = {}
    for variable, text in environment_overrides(env):
        _apply_override(data, text, origins, label=f"environment variable {variable}")
    for text in overrides:
        _apply_override(data, text, origins)

    for name, value in data.items():
        if name not in _SECTIONS:
            raise _unknown_top_level(name, value, _blame((name,), origins, label))
    try:
        return Config.model_validate({**data, "origin": origin})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise _translate(error, _blame(error["loc"], origins, label)) from None


def _read_toml(file: Path, label: str, required: bool, missing_hint: str) -> dict[str, Any] | None:
    try:
        with file.open("rb") as stream:
            raw = stream.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError(f"{label}: config file not found", missing_hint) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{label}: is a directory, not a config file", "name the tidegate.toml file itself"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{label}: cannot read config file: {exc.strerror or exc}",
            "check that the file exists and is readable",
        ) from None
    if len(raw) > _MAX_FILE_BYTES:
        raise ConfigError(
            f"{label}: config file is larger than {_MAX_FILE_BYTES // 1024} KiB",
            "check that this is the right file",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})",
            "save the file as UTF-8",
        ) from None
    # Editors on Windows may start the file with a byte-order mark, which TOML does not allow.
    text = text.removeprefix("\ufeff")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{label}: {_toml_problem(exc)}",
            'check the TOML syntax there; strings need double quotes, such as timezone = "UTC"',
        ) from None


_TOML_POSITION_RE = re.compile(r"(?s)(.*) \(at line (\d+), column (\d+)\)")
_TOML_END_RE = re.compile(r"(?s)(.*) \(at end of document\)")


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    message = " ".join(str(exc).split())
    match = _TOML_POSITION_RE.fullmatch(message)
    if match is not None:
        reason, line, column = match.groups()
        return f"invalid TOML at line {line}, column {column}: {reason}"
    match = _TOML_END_RE.fullmatch(message)
    if match is not None:
        return f"invalid TOML at end of file: {match.group(1)}"
    return f"invalid TOML: {message}"


# --------------------------------------------------------------------------- overrides


# The password of user:password@host, also in a URL malformed elsewhere.
_URL_PASSWORD_RE = re.compile(r":[^:/@]+@")


def _secret_key(key: str) -> bool:
    """Whether a key names a secret: the serve token, or a catalog property such as
    ``s3.secret-access-key``, ``token`` or ``credential``."""
    return any(word in key.lower() for word in ("token", "secret", "password", "credential"))


def _mask(key: str, value: str) -> str:
    """A value as it may appear in a message: tokens hidden, URL passwords replaced."""
    if _secret_key(key) and value:
        return "***"
    if key == "url":
        return _URL_PASSWORD_RE.sub(":***@", value)
    return value


def environment_overrides(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The configuration the environment sets, as (variable, ``section.key=value``), in
    name order: ``TIDEGATE_SOURCE__URL=…`` sets ``[source] url``, and
    ``TIDEGATE_TABLES__TIME_COLUMNS__Orders=placed`` sets ``[tables.time_columns] Orders``
    (the section and key are not case-sensitive, what follows them is kept as written). The
    value is read as a ``--set`` value is."""
    found = []
    for variable in sorted(environ):
        name = variable.removeprefix(ENV_PREFIX)
        if variable == CONFIG_ENV_VAR or name == variable or "__" not in name:
            continue
        section, key, *rest = name.split("__")
        dotted = ".".join([section.lower(), key.lower(), *rest])
        found.append((variable, f"{dotted}={environ[variable]}"))
    return found


def _apply_override(
    data: dict[str, Any], text: str, origins: dict[tuple[str, ...], str], label: str = ""
) -> None:
    dotted, equals, raw = text.partition("=")
    parts = [part.strip() for part in dotted.split(".")]
    shown = _mask(parts[-1], raw.strip())
    # Messages name the override as typed (or its variable), except for the secret it may
    # carry.
    label = label or (f"--set {dotted}={shown}" if shown != raw.strip() else f"--set {text}")
    if not equals or len(parts) < 2 or not all(parts):
        hint = "write --set section.key=value, such as --set entities.threads=8"
        if equals and len(parts) == 1:
            homes = [name for name, model in _SECTIONS.items() if parts[0] in _keys(model)]
            if homes:
                hint = f"did you mean --set {homes[0]}.{parts[0]}={shown}?"
        raise ConfigError(f"{label}: expected section.key=value", hint)
    _check_override_path(parts, label)

    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
            origins.setdefault(tuple(parts[: depth + 1]), label)
        node = child
    node[parts[-1]] = _override_value(parts, raw.strip())
    origins[tuple(parts)] = label


def _check_override_path(parts: list[str], label: str) -> None:
    section, key = parts[0], parts[1]
    model = _SECTIONS.get(section)
    if model is None:
        raise ConfigError(f"{label}: unknown section [{section}]", _suggest_section(section))
    if key not in _keys(model):
        raise ConfigError(
            f"{label}: [{section}] unknown key {key!r}", _suggest_key(key, _keys(model), section)
        )
    rest = parts[2:]
    if not rest:
        return
    if (section, key) in (("tables", "time_columns"), ("tables", "keys")) and len(rest) == 1:
        return
    if (section, key) == ("target", "iceberg"):  # catalog properties: any name, dotted too
        return
    if (section, key) == ("entities", "define") and len(rest) <= 2:
        if len(rest) == 2 and rest[1] not in _keys(EntityDefinition):
            entity = f"entities.define.{rest[0]}"
            raise ConfigError(
                f"{label}: [{entity}] unknown key {rest[1]!r}",
                _suggest_key(rest[1], _keys(EntityDefinition), entity),
            )
        return
    raise ConfigError(
        f"{label}: [{section}] {key}: has no key {'.'.join(rest)!r}",
        f"write --set {section}.{key}=value",
    )


def _override_value(parts: list[str], raw: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    # A value with a newline could smuggle in more keys; then it is just text.
    if parsed.keys() != {"v"}:
        return raw
    value = parsed["v"]
    if not isinstance(value, str) and _holds_text(parts):
        return raw
    return value


def _holds_text(parts: list[str]) -> bool:
    """Whether the key at ``parts`` holds a string (so ``1234`` there means "1234")."""
    section, key, rest = parts[0], parts[1], parts[2:]
    if (section, key) == ("tables", "time_columns"):
        return len(rest) == 1
    if (section, key) == ("entities", "define"):
        field = _field(EntityDefinition, rest[1]) if len(rest) == 2 else None
    else:
        field = _field(_SECTIONS[section], key) if not rest else None
    return field is not None and field.annotation is str


def _blame(loc: Iterable[str | int], origins: Mapping[tuple[str, ...], str], label: str) -> str:
    """The override that set the value at ``loc`` or a container of it, else the file."""
    path = tuple(part for part in loc if isinstance(part, str))
    for length in range(len(path), 0, -1):
        blamed = origins.get(path[:length])
        if blamed is not None:
            return blamed
    return label


# --------------------------------------------------------------------------- error messages


def _suggest_section(name: str) -> str:
    close = difflib.get_close_matches(name, list(_SECTIONS), n=1)
    if close:
        return f"did you mean [{close[0]}]?"
    return "valid sections: " + ", ".join(f"[{section}]" for section in _SECTIONS)


def _suggest_key(key: str, keys: list[str], section: str) -> str:
    close = difflib.get_close_matches(key, keys, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"valid keys in [{section}]: " + ", ".join(keys)


def _unknown_top_level(name: str, value: Any, label: str) -> ConfigError:
    if isinstance(value, dict):
        return ConfigError(f"{label}: unknown section [{name}]", _suggest_section(name))
    homes = [section for section, model in _SECTIONS.items() if name in _keys(model)]
    hint = f"move it under [{homes[0]}]" if homes else _suggest_section(name)
    return ConfigError(f"{label}: unknown key {name!r} outside any section", hint)


def _where(loc: Iterable[str | int]) -> tuple[str, str]:
    """Splits a pydantic location into the TOML section and the key inside it."""
    # List positions are left out: the message shows the offending value instead.
    parts = [part for part in loc if isinstance(part, str) and part != "[key]"]
    if len(parts) >= 4 and parts[:2] == ["entities", "define"]:
        return f"entities.define.{parts[2]}", ".".join(parts[3:])
    if not parts:
        return "", ""
    return parts[0], ".".join(parts[1:])


def _model_of(section: str) -> type[BaseModel] | None:
    if section.startswith("entities.define."):
        return EntityDefinition
    return _SECTIONS.get(section)


def _line(label: str, section: str, key: str, what: str) -> str:
    if section and key:
        return f"{label}: [{section}] {key}: {what}"
    if section:
        return f"{label}: [{section}] {what}"
    return f"{label}: {what}"


def _show(value: Any) -> str:
    """A value as a user would recognise it from the TOML, short and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        text = value.isoformat()
    elif isinstance(value, str | int | float):
        text = repr(value)
    else:
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What sort of value it is, for keys whose values must not be echoed."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        ((list, tuple), "an array"),
        (dict, "a table"),
        ((datetime, date, time), "a date-time"),
    ]
    for types, kind in kinds:
        if isinstance(value, types):
            return kind
    return "a value of another kind"


def _translate(error: ErrorDetails, label: str) -> ConfigError:
    """Turns pydantic's first error into one ConfigError line and a hint."""
    section, key = _where(error["loc"])
    leaf = key.rsplit(".", 1)[-1] if key else section
    kind = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = _kind(value) if leaf in _SECRET_KEYS else _show(value)

    if kind == "extra_forbidden":
        # An unknown key sits directly in its section: the key path is just its name.
        model = _model_of(section)
        keys = _keys(model) if model is not None else []
        return ConfigError(
            _line(label, section, "", f"unknown key {key!r}"), _suggest_key(key, keys, section)
        )
    if kind == "value_error" and isinstance(ctx.get("error"), _Invalid):
        invalid: _Invalid = ctx["error"]
        return ConfigError(_line(label, section, key, invalid.what), invalid.hint)
    if kind == "missing":
        return ConfigError(
            _line(label, section, key, "required key is missing"), f"add {leaf} = ... to it"
        )
    if kind == "greater_than_equal":
        what, hint = f"must be at least {ctx['ge']}", f"use {ctx['ge']} or more"
    elif kind == "less_than_equal":
        what, hint = f"must be at most {ctx['le']}", f"use {ctx['le']} or less"
    elif kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        first = re.search(r"'([^']*)'", expected)
        what = f"must be {expected}"
        hint = f'such as {leaf} = "{first.group(1)}"' if first else ""
    elif kind in _TYPE_ERRORS:
        what, hint = _type_problem(_TYPE_ERRORS[kind], section, key, leaf)
    else:
        # Anything not foreseen: pydantic's short message, flattened to one line.
        what = " ".join(str(error["msg"]).split())
        what, hint = what[:1].lower() + what[1:], ""
    return ConfigError(_line(label, section, key, f"{what}, got {got}"), hint)


# pydantic error type -> the TOML type that was expected.
_TYPE_ERRORS = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "string_type": "string",
    "tuple_type": "array",
    "list_type": "array",
    "dict_type": "table",
    "mapping_type": "table",
    "model_type": "table",
    "model_attributes_type": "table",
}


def _type_problem(expected: str, section: str, key: str, leaf: str) -> tuple[str, str]:
    if expected == "integer":
        model = _model_of(section)
        field = _field(model, key) if model is not None else None
        default = getattr(field, "default", None)
        sample = default if type(default) is int else 1
        return (
            "expected an integer",
            f"write a whole number without quotes, such as {leaf} = {sample}",
        )
    if expected == "boolean":
        return (
            "expected true or false",
            f"write true or false without quotes, such as {leaf} = true",
        )
    if expected == "string":
        return "expected a string", f'put the value in double quotes, such as {leaf} = "..."'
    if expected == "array":
        return "expected an array", f'write an array, such as {leaf} = ["..."]'
    if not key:
        return "expected a table", f"write a [{section}] header followed by key = value lines"
    if section == "entities" and key.startswith("define."):
        return "expected a table", f"write an [entities.{key}] header followed by key = value lines"
    return "expected a table", f"write a table of key = value pairs, such as {leaf} = {{ ... }}"
