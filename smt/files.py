"""Writing output files atomically: the complete new file or the old one, never half of one, and no temporary
file left behind (the temporary file lives beside the output, in the same folder, so the rename is atomic)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "atomic_write_bytes"]


@contextmanager
def atomic_output(path: os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same folder, hidden name) to write to; renamed to `path` when the block
    ends normally, removed whatever happens, so `path` is either the complete new file or what it was."""
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
