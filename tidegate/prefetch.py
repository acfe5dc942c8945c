"""Reading ahead: an iterator's next items made in a thread of its own while the consumer
works on the last one.

Worth it where both sides spend their time in code that releases the GIL: an export reads
from the database driver while zlib compresses; a load inflates and parses a member with
Arrow while Arrow writes Parquet. On two cores the two overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetched(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """The same items, made by a thread of their own up to `depth` ahead.

    An error in the producer is raised here; if the consumer stops early, the producer is
    told to stop too, and closes `items`.
    """
    buffer: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        # The producer closes its own iterator: database connections must be closed by
        # the thread that used them.
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(error)
        finally:
            close_iterator(items)

    thread = threading.Thread(target=produce, name="tidegate-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


def close_iterator(items: Iterator[object]) -> None:
    """Close a generator now, so that it releases what it holds at once: a database
    connection (an open SQLite read transaction would block a run's own writes), an
    archive's member. Other iterators have nothing to close."""
    close = getattr(items, "close", None)
    if close is not None:
        close()
