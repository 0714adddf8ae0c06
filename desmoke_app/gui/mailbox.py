"""`Latest`: the one-item mailbox the worker threads hand frames and requests over with.

A new item replaces an unread one (counted as dropped) and at most one wake-up event is
queued at a time. So when a receiver is behind, items are dropped, never queued: an
unbounded backlog of queued signals would freeze the GUI and grow memory without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Latest:
    """Thread-safe single-item mailbox: put() replaces (or merges into) the unread item,
    take() empties.

    put() returns True when the receiver must be woken (no wake-up is pending yet).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: Any = None
        self._full = False
        self._armed = False
        self.dropped = 0

    def put(self, item: Any, merge: Callable[[Any, Any], Any] | None = None) -> bool:
        """merge(unread, item): what replaces an unread item instead of `item` alone (then
        nothing counts as dropped)."""
        with self._lock:
            if self._full and merge is not None:
                item = merge(self._item, item)
            elif self._full:
                self.dropped += 1
            self._item, self._full = item, True
            if self._armed:
                return False
            self._armed = True
            return True

    def take(self) -> Any:
        with self._lock:
            item = self._item if self._full else None
            self._item, self._full, self._armed = None, False, False
            return item

    def clear(self) -> None:
        with self._lock:
            self._item, self._full = None, False
