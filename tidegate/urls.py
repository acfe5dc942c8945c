"""Database URLs, read in one place for sources and targets: which kind of database a URL
names, and the driver tidegate uses when the URL names none.

A URL without a driver (``postgresql://``) would make SQLAlchemy look for psycopg2, which
tidegate does not install, so each kind gets the driver tidegate ships with. Aliases are
folded into one name per kind: ``postgres`` is ``postgresql``, ``mariadb`` is ``mysql``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL

from tidegate.errors import ConfigError

# kind as written in a URL -> (the kind's one name, SQLAlchemy's name for it, the driver
# tidegate uses for it; "" for the one SQLAlchemy's dialect picks)
_KINDS: dict[str, tuple[str, str, str]] = {
    "sqlite": ("sqlite", "sqlite", ""),
    "postgresql": ("postgresql", "postgresql", "psycopg"),
    "postgres": ("postgresql", "postgresql", "psycopg"),
    "mysql": ("mysql", "mysql", "pymysql"),
    "mariadb": ("mysql", "mariadb", "pymysql"),
    "duckdb": ("duckdb", "duckdb", ""),
}

DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "mysqlconnector": "mysql-connector-python",
    "aiomysql": "aiomysql",
    "duckdb": "duckdb-engine",
}
"""The package to install for a driver a URL names and tidegate does not ship."""


def parse(url: str, label: str, kinds: Collection[str], example: str) -> tuple[URL, str]:
    """A URL with tidegate's default driver filled in, and its kind's one name.

    Args:
        url: the URL as configured.
        label: where it came from, for messages ("tidegate.toml: [source] url").
        kinds: the kinds accepted here (one names each: "sqlite", "postgresql", ...).
        example: a URL to show in the hint when the text is not one.

    Raises:
        ConfigError: the text is not a database URL, or names a kind not accepted here.
    """
    try:
        parsed = sa.make_url(with_encoded_password(url))
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"{label}: not a database URL: {url!r}",
            f"use a SQLAlchemy URL such as {example}",
        ) from None
    written, _, driver = parsed.drivername.partition("+")
    kind, name, default_driver = _KINDS.get(written, (written, written, ""))
    if kind not in kinds:
        accepted = ", ".join(f"{k}://" for k in kinds)
        raise ConfigError(f"{label}: {written!r} databases are not supported", f"use {accepted}")
    driver = driver or default_driver
    return parsed.set(drivername=f"{name}+{driver}" if driver else name), kind


_RAW = re.compile(r"[@:/?#]|%(?![0-9A-Fa-f]{2})")


def with_encoded_password(url: str) -> str:
    """The URL with its password percent-encoded when it is written raw.

    A password holding `@ : / ? #` (or a `%` that starts no escape) cannot be read from a
    URL as written, so it is taken to be raw: everything between the first `:` after the
    user and the last `@` before the host, encoded. A password already percent-encoded
    (or without such characters) is left as it is; a raw one that holds `%XX` must be
    written encoded (`%25XX`).
    """
    scheme, separator, rest = url.partition("://")
    at = rest.rfind("@")
    if not separator or at < 0:
        return url
    userinfo, host = rest[:at], rest[at + 1 :]
    user, colon, password = userinfo.partition(":")
    if not colon or not _RAW.search(password) or "/" in user:
        return url
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


def kind_of(url: URL) -> str:
    """The one name of a parsed URL's kind of database."""
    return one_name(url.get_backend_name())


def one_name(kind: str) -> str:
    """A kind of database as written (``mariadb``, ``postgres``) by its one name."""
    return _KINDS.get(kind, (kind, kind, ""))[0]
