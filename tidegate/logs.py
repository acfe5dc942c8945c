"""What tidegate does, logged through Python's `logging`: text on a terminal, or one JSON
object per line (`--log-format json`) for a log collector.

The library logs under the `tidegate` logger (jobs' start and end with their counts,
each export a load applies, failures with their hint) and never configures logging
itself: a program that calls it keeps its own handlers. The CLI calls `configure`.

Structured fields go in `extra` (`log.info("…", extra={"job": "tables", "rows": 5})`):
the text form appends them as `key=value`, the JSON form as keys of the object. Every line
passes through `redacted` first, so that a URL's password never reaches a log, whatever
the message quotes (a driver's error may quote the URL it failed to reach).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

import orjson

if TYPE_CHECKING:
    from tidegate.model import RunRecord

LogFormat = Literal["text", "json"]
LEVELS = ("debug", "info", "warning", "error")

# The attributes every LogRecord has: whatever else a record holds came from `extra`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# `scheme://user:password@host`: the password, up to the last `@` before the host.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^\s/]*@")
# `password=…` in a query string or a libpq connection string.
_PASSWORD_PARAMETER = re.compile(r"(?P<head>password=)[^\s&;]+", re.IGNORECASE)
# The loggers `configure` attaches its handler to: tidegate's, and uvicorn's under serve.
_LOGGERS = ("tidegate", "uvicorn", "uvicorn.access", "uvicorn.error")
_runs = logging.getLogger("tidegate.runs")


def redacted(text: str) -> str:
    """`text` with every URL password and `password=` value replaced by `***`."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _PASSWORD_PARAMETER.sub(r"\g<head>***", text)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was logged with (its `extra`)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`2026-12-07T12:00:01Z INFO tidegate.jobs: tables run 7 ended rows=12 files=3`"""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={_text(v)}" for k, v in fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if extras:
            line += f" {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redacted(line)


class JsonFormatter(logging.Formatter):
    """`{"time": "…Z", "level": "info", "logger": "tidegate.jobs", "message": "…", …}`"""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update({k: _plain(v) for k, v in fields(record).items()})
        if record.exc_info:
            document["traceback"] = self.formatException(record.exc_info)
        return redacted(orjson.dumps(document, default=str).decode("utf-8"))


def configure(
    level: str = "warning", fmt: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send tidegate's (and uvicorn's) log records at `level` and above to `stream`
    (standard error), as text or JSON lines. Called again, it replaces what it set."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "tidegate", False)]:
            logger.removeHandler(old)
        handler.tidegate = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False


def run_started(run: RunRecord) -> None:
    """Log the start of a recorded run (any job, loads included)."""
    fields = {"job": run.job, "run": run.run_number}
    _runs.info("%s run %d started", run.job, run.run_number, extra=fields)


def run_ended(run: RunRecord) -> None:
    """Log the end of a recorded run with its counts; one that did not succeed as a
    warning."""
    fields: dict[str, object] = {
        "job": run.job,
        "run": run.run_number,
        "status": run.status,
        "rows": run.rows,
        "files": run.files,
        "bytes": run.bytes,
        "seconds": run.duration_seconds,
    }
    if run.error:
        fields["error"] = run.error
    level = logging.INFO if run.status == "succeeded" else logging.WARNING
    _runs.log(level, "%s run %d %s", run.job, run.run_number, run.status, extra=fields)


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _text(value: Any) -> str:
    text = str(value)
    return orjson.dumps(text).decode() if not text or any(c.isspace() for c in text) else text
