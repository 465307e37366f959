"""A small bounded memo whose entries expire: results of read models that a key fully identifies
(a fingerprint of the rows they read) and that a moment in time can outdate (a due date passing)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime
from threading import Lock
from typing import Any


class Memo:
    """Up to ``size`` values by key, each until a moment of the engine clock; the least recently used go first."""

    def __init__(self, size: int = 512):
        self._items: OrderedDict[Hashable, tuple[datetime, Any]] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, key: Hashable, now: datetime) -> Any | None:
        """The value kept under ``key`` if it still holds at ``now``, else ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if now >= item[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: Any, until: datetime) -> None:
        with self._lock:
            self._items[key] = (until, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
