"""What the benchmark scripts share: a scratch PostgreSQL database, running a command with
its wall time and peak RSS, rounds of cases in rotating order, and the labels of a
report. Importing it byte-compiles tidegate (see `byte_compile`)."""

from __future__ import annotations

import compileall
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

GNU_TIME = "/usr/bin/time"
RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def byte_compile() -> None:
    """Byte-compile tidegate's modules, as installing it does (pip compiles a package's
    modules at install): an editable checkout run with PYTHONDONTWRITEBYTECODE set would
    otherwise compile about 90 of them from source in every process, some 0.3 s that no
    installed tidegate spends."""
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "tidegate", quiet=1)


byte_compile()


@dataclass(frozen=True)
class Sample:
    """One measured command: wall seconds and peak RSS in KiB."""

    seconds: float
    rss_kib: int


def measure(
    argv: list[str],
    *,
    stdout: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Sample, str]:
    """Run a command to completion (in `env`, default this process's environment); its
    wall time, peak RSS and (if not redirected) stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        if Path(GNU_TIME).exists():
            wrapped = [GNU_TIME, "-v", "-o", report.name, *argv]
        else:
            wrapped = [sys.executable, "-c", RSS_WRAPPER, report.name, *argv]
        with open(stdout, "wb") if stdout else nullcontext(subprocess.PIPE) as sink:
            start = time.perf_counter()
            done = subprocess.run(
                wrapped, cwd=cwd, env=env, stdout=sink, stderr=subprocess.PIPE, check=False
            )
            seconds = time.perf_counter() - start
        text = report.read()
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} exited with {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return Sample(seconds, _peak_rss_kib(text)), (done.stdout or b"").decode()


def _peak_rss_kib(report: str) -> int:
    for line in report.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return int(report.strip())


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Create an empty database; yield its URL; drop it (and its sessions) at the end."""
    name = f"tidegate_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def tidegate_commit() -> str:
    """The commit of the tidegate being measured, marked when tidegate/ has local changes."""

    def git(*args: str) -> str:
        root = Path(__file__).resolve().parent.parent
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (
        " with local changes" if git("status", "--porcelain", "--", "tidegate") else ""
    )


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


class Timed(Protocol):
    seconds: float
    rss_kib: int


T = TypeVar("T", bound=Timed)


def run_rounds(
    cases: list[tuple[str, Callable[[Path], T]]], rounds: int, scratch: Path, label: str
) -> dict[str, list[T]]:
    """Every case once a round, each in a work directory of its own (removed after), the
    order rotating from round to round so that no case always goes first; a progress line
    each, starting with `label`."""
    results: dict[str, list[T]] = {name: [] for name, _ in cases}
    for number in range(rounds):
        shift = number % len(cases)
        for name, case in cases[shift:] + cases[:shift]:
            work = Path(tempfile.mkdtemp(dir=scratch))
            try:
                result = case(work)
            finally:
                shutil.rmtree(work)
            results[name].append(result)
            progress(
                f"{label}  round {number + 1}  {name:<32} {result.seconds:7.2f} s  "
                f"{result.rss_kib / 1024:6.1f} MiB"
            )
    return results
