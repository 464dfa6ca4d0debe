"""Work beside the UI thread: `TorchThreads`, the `Prefetcher` thread and the `Replicas` of a model it runs on."""
from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Optional

import torch
import torch.nn as nn

from ..cache import LRU


class TorchThreads:
    """A context that runs torch with `n` intra-op threads and restores the caller's count when the last of
    the threads using it (the UI thread, a prefetch) leaves."""

    def __init__(self, n: Optional[int] = 1):
        self.n = n
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None

    def __enter__(self):
        if self.n is None:
            return self
        with self._lock:
            if self._depth == 0:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(self.n)
            self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        if self.n is None:
            return
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                torch.set_num_threads(self._saved)


_LIVE_PREFETCHERS: "weakref.WeakSet[Prefetcher]" = weakref.WeakSet()


@atexit.register
def _join_prefetchers() -> None:
    for p in list(_LIVE_PREFETCHERS):
        p.join()


class Prefetcher:
    """One background thread that runs the latest list of jobs (e.g. the next and previous images' captures).

    `request(jobs)` replaces the jobs not yet started; `cancel()` drops them; a job already running finishes
    (a forward pass can not be interrupted) and only fills a cache. Nothing here ever waits for a job: a
    caller that needs a result a job is building waits for that build inside `LRU.get`, as it would for its
    own. A failing job is recorded in `errors` (the caller's own computation shows the error in its place).
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._jobs: list[Callable[[], Any]] = []
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.errors: list[str] = []
        self.done = 0

    def request(self, jobs: Sequence[Callable[[], Any]]) -> None:
        with self._cond:
            self._jobs = list(jobs)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="viz-prefetch", daemon=True)
                self._thread.start()
                _LIVE_PREFETCHERS.add(self)
            self._cond.notify()

    def join(self, timeout: float = 10.0) -> None:
        """Close, and wait for the job that is running to end (at exit: a daemon thread stopped inside torch
        aborts the process)."""
        self.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def cancel(self) -> None:
        with self._cond:
            self._jobs = []

    def close(self) -> None:
        with self._cond:
            self._jobs, self._closed = [], True
            self._cond.notify()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until no job is queued or running (for tests and benchmarks); False on timeout."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if not self._jobs and not self._running:
                    return True
            time.sleep(0.005)
        return False

    _running = False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.pop(0)
                self._running = True
            try:
                job()
            except Exception as e:  # recorded, not raised: the UI thread computes (and reports) it itself
                self.errors = (self.errors + [f"{type(e).__name__}: {e}"])[-10:]
            finally:
                with self._cond:
                    self._running = False
                    self.done += 1


class Replicas:
    """The caller's model and the background prefetch's copies of it.

    The caller (the UI thread) computes under `using(model)`: its capture hooks and masked weights exist only
    inside. `copy(key, model)` deep-copies the model under the same lock, on the prefetch thread (a copy made
    while the caller computes would carry its hooks or masks; made on the UI thread, it delays the update the
    user waits for). The prefetch then runs on its copy, in parallel with the caller.

    Args:
        keep: Copies kept (by model key).
    """

    def __init__(self, keep: int = 2):
        self._lock = threading.RLock()
        self._copies = LRU(keep)
        self._twins: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()

    def using(self, model: nn.Module):
        """The context the caller's computations on `model` run in (none for a copy: copies run in parallel)."""
        import contextlib

        return contextlib.nullcontext() if model in self._twins else self._lock

    def copy(self, key: Hashable, model: nn.Module) -> nn.Module:
        """The copy of `model` (made once per `key`, while the caller is not computing on it)."""
        import copy

        def build():
            with self._lock:
                twin = copy.deepcopy(model)
            self._twins.add(twin)
            return twin
        return self._copies.get(key, build)
