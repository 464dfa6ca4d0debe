"""One least-recently-used cache for every cache in `viz` (widgets' sessions, model resolvers, figure sets).

A key names what determines the entry's content (a configuration, an image key, a block, a mask), never
`id()` of an object: CPython gives a freed object's id to the next one, so an id-keyed cache can hand
one model's capture to another model after an eviction.

    models = LRU(8)
    model = models.get(("demo", "main"), lambda: demo_model("main"))
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

__all__ = ["LRU"]


class LRU:
    """A mapping that keeps the `size` most recently used entries; `get(key, build)` builds a missing one.

    Thread-safe (a background prefetch may fill it while the UI reads). A `build` runs outside the lock; a
    second thread asking for a key that is being built waits for that build instead of repeating it (and
    builds it itself if that build failed).

    Args:
        size: How many entries to keep (at least 1).
    """

    def __init__(self, size: int = 64):
        if size < 1:
            raise ValueError(f"cache size {size}: keep at least 1 entry")
        self.size = size
        self._store: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict = {}  # key -> Event set when its build ends
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The entry for `key`, built by `build()` and stored when missing (the least recently used beyond
        `size` are dropped)."""
        while True:
            with self._lock:
                if key in self._store:
                    self._store.move_to_end(key)
                    self.hits += 1
                    return self._store[key]
                pending = self._building.get(key)
                if pending is None:
                    self.misses += 1
                    done = self._building[key] = threading.Event()
                    break
            pending.wait()  # another thread builds it: take its result (or build it here if that failed)
        try:
            value = build()
            return self.put(key, value)
        finally:
            with self._lock:
                self._building.pop(key, None)
            done.set()

    def put(self, key: Hashable, value: Any) -> Any:
        """Store `value` under `key` (an entry already there wins: it is returned and kept)."""
        with self._lock:
            if key in self._store:
                self._store.move_to_end(key)
                return self._store[key]
            self._store[key] = value
            while len(self._store) > self.size:
                self._store.popitem(last=False)
            return value

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The entry for `key` without building it or changing its recency; `default` when missing."""
        with self._lock:
            return self._store.get(key, default)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._store

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    def keys(self) -> list:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._store)

    def __iter__(self) -> Iterator:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"LRU(size={self.size}, entries={len(self)})"
