"""Files written whole or not at all: a reader never sees a half-written result, state or report."""
from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a temporary path next to `path` (same extension, so writers that add one keep it); on success
    it replaces `path` by rename, on error it is removed."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj, **dump_kwargs) -> None:
    """`json.dump(obj)` to `path` atomically, ending in a newline."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, **dump_kwargs)
            f.write("\n")


def write_text(path: str, text: str) -> None:
    """`text` to `path` atomically (a report: a reader sees the old one or the new one, whole)."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
