"""Reading CSV from a client program: counting, failures, stopping early."""

from __future__ import annotations

import os
import time

import pytest

from tidegate.clients import stream_csv
from tidegate.errors import SourceError


def test_rows_are_counted_and_the_header_left_out() -> None:
    counted: list[int] = []
    script = "printf 'a,b\\n1,\"x\\ny\"\\n2,z\\n'"
    data = b"".join(
        stream_csv(["sh", "-c", script], os.environ, counted.append, "reading", with_header=True)
    )
    assert data == b'a,b\n1,"x\ny"\n2,z\n'
    assert sum(counted) == 2


def test_a_failing_client_is_one_error_with_its_message() -> None:
    with pytest.raises(SourceError, match=r"^reading the source: boom happened$"):
        list(
            stream_csv(
                ["sh", "-c", "echo 'boom happened' >&2; exit 3"],
                os.environ,
                lambda _n: None,
                "reading the source",
                with_header=False,
            )
        )


def test_a_consumer_that_stops_early_stops_the_client() -> None:
    chunks = stream_csv(["yes", "1,2"], os.environ, lambda _n: None, "reading", with_header=False)
    next(chunks)
    started = time.monotonic()
    chunks.close()  # what an export does when the zip cannot be written
    assert time.monotonic() - started < 5
