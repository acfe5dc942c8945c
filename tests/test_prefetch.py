"""Reading ahead in a thread: the same items in order, the producer's error raised to the
consumer, and a producer told to stop (and closed) when the consumer stops early."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.prefetch import prefetched


@given(st.lists(st.integers()), st.integers(min_value=1, max_value=4))
def test_the_same_items_in_order(items: list[int], depth: int) -> None:
    assert list(prefetched(iter(items), depth)) == items


def test_an_error_in_the_producer_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad record 2")

    got = []
    with pytest.raises(ValueError, match="bad record 2"):
        for item in prefetched(failing(), depth=1):
            got.append(item)
    assert got == [1]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer() -> None:
    closed = threading.Event()
    made = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                made.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    items = prefetched(endless(), depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()  # what a `for` loop left by an exception does
    assert closed.wait(5)
    assert len(made) <= 6  # it stopped a few items ahead, not at the end of the stream
