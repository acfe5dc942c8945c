"""Real `tidegate` processes, started in milliseconds, to be killed with SIGKILL.

A fresh `python -m tidegate` spends about a second importing SQLAlchemy, the drivers and
Typer before it does anything, so a kill at a random moment would mostly land in the
imports, and hundreds of them would not fit a test's time budget. A fork server imports
tidegate once (it opens no connection and starts no thread) and forks a child per command:
the child is a process of its own running exactly what the `tidegate` console script runs
(`tidegate.cli.app` with the command line given), from its first statement; killing it is
killing a real tidegate run at that moment. The server waits for each child and reports
how it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

# The server: requests are JSON lines. {"run": …} forks a child and answers its pid;
# {"reap": pid} waits for that child to end and answers its wait status. A child is not
# reaped before it is asked for, so its pid cannot be reused by another process while a
# kill may still be sent to it.
SERVER = textwrap.dedent(r"""
    import json, os, sys
    import psycopg, pymysql, sqlalchemy
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    import tidegate.cli

    for line in sys.stdin:
        request = json.loads(line)
        if "reap" in request:
            _, status = os.waitpid(request["reap"], 0)
            print(json.dumps({"status": status}), flush=True)
            continue
        request = request["run"]
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)  # its own group: nothing it leaves behind reaches the server
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir(request["cwd"])
            code = 0
            try:
                tidegate.cli.app(args=request["argv"], prog_name="tidegate")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 3
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
""")


@dataclass(frozen=True)
class Ended:
    """How a tidegate run ended."""

    killed: bool  # by our SIGKILL, while it was running
    code: int | None  # its exit status when it was not killed
    output: str  # what it wrote to stdout and stderr
    seconds: float


class ForkServer:
    """Runs tidegate commands in forked children of one pre-imported process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=workdir,
        )
        self.runs = 0

    def run(self, argv: list[str], cwd: Path, kill_after: float | None = None) -> Ended:
        """Run `tidegate <argv>` in `cwd`; with `kill_after`, send it SIGKILL that many
        seconds after it started, if it is still running then."""
        [ended] = self.run_together([(argv, cwd, kill_after)])
        return ended

    def run_together(self, commands: list[tuple[list[str], Path, float | None]]) -> list[Ended]:
        """Start every command at once; each (argv, cwd, kill_after) as in `run`."""
        started = time.monotonic()
        children = [self._start(argv, cwd) for argv, cwd, _kill in commands]
        kills = sorted(
            (kill, index) for index, (_a, _c, kill) in enumerate(commands) if kill is not None
        )
        sent = set()
        for kill_after, index in kills:
            time.sleep(max(0.0, started + kill_after - time.monotonic()))
            os.kill(children[index][0], signal.SIGKILL)  # a zombie takes it harmlessly
            sent.add(index)
        ended = []
        for index, (pid, log) in enumerate(children):
            status = self._ask({"reap": pid})["status"]
            seconds = time.monotonic() - started
            killed = index in sent and os.WIFSIGNALED(status)
            killed = killed and os.WTERMSIG(status) == signal.SIGKILL
            code = None if killed else os.waitstatus_to_exitcode(status)
            # A child killed in its first moments may not have opened its log yet.
            output = log.read_text(errors="replace") if log.exists() else ""
            log.unlink(missing_ok=True)
            ended.append(Ended(killed, code, output, seconds))
        return ended

    def _start(self, argv: list[str], cwd: Path) -> tuple[int, Path]:
        self.runs += 1
        log = self.workdir / f"run_{self.runs}.log"
        reply = self._ask({"run": {"argv": argv, "cwd": str(cwd), "log": str(log)}})
        return int(reply["pid"]), log

    def _ask(self, request: dict[str, object]) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer: dict[str, int] = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
