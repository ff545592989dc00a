"""Latest-only hand-off between a subscription callback and a processing thread.

A subscription callback only stores the newest message; a worker thread takes it when it is free.
A message replaced before the worker took it is counted as dropped-as-stale, never queued: a slow
stage processes the freshest frame and its output age stays bounded.
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar
from collections.abc import Callable

T = TypeVar('T')
_log = logging.getLogger(__name__)


class LatestSlot(Generic[T]):
    """A one-item mailbox; put() overwrites an unread item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self.dropped = 0          # items overwritten before they were taken
        self.received = 0

    def put(self, item: T) -> bool:
        """Store the newest item; returns True when an unread one was dropped."""
        with self._cond:
            dropped = self._has_item
            if dropped:
                self.dropped += 1
            self._item, self._has_item = item, True
            self.received += 1
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to `timeout` seconds for an item; None when none came or the slot closed."""
        with self._cond:
            if not self._has_item and not self._closed:
                self._cond.wait(timeout)
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def clear(self) -> None:
        with self._cond:
            self._item, self._has_item = None, False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


class LatestWorker(Generic[T]):
    """A thread that runs `handler` on the latest item of a LatestSlot until stopped.

    Exceptions from the handler go to `on_error` (the thread keeps running): one bad frame must
    never stop the stage.
    """

    def __init__(self, name: str, handler: Callable[[T], None],
                 on_error: Callable[[T, BaseException], None]) -> None:
        self.name = name
        self.slot: LatestSlot[T] = LatestSlot()
        self._handler = handler
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy = False

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.slot.reopen()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop taking items and wait up to `timeout` s for the one in hand; True when done."""
        self._stop.set()
        self.slot.close()
        finished = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                finished = False
                _log.warning('%s: worker still busy after %.1f s; leaving it to finish',
                             self.name, timeout)
        self._thread = None
        self.slot.clear()
        return finished

    def submit(self, item: T) -> bool:
        """Hand over the newest item; True when an older unprocessed one was dropped."""
        return self.slot.put(item)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            self.busy = True
            try:
                self._handler(item)
            except Exception as exc:  # noqa: BLE001 - reported, the stage keeps running
                self._on_error(item, exc)
            finally:
                self.busy = False
