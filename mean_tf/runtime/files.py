"""Files written whole or not at all: a reader never sees a half-written result, state or report.

Every path may also be a URI (gs://bucket/path on Vertex AI): the helpers here send a local path through
Python's own file functions (TensorFlow is not loaded for it) and a URI through `tf.io.gfile`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator, Optional

# Marks a folder whose upload (`upload_dir`) is under way or was cut short: it holds no complete result.
UPLOADING_MARKER = ".uploading"


def is_uri(path) -> bool:
    """True for a URI such as gs://bucket/path, False for a local path."""
    return "://" in str(path)


def absolute(path) -> str:
    """`path` made absolute; a URI as it is."""
    return str(path) if is_uri(path) else os.path.abspath(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def open_file(path, mode: str = "r"):
    """`open(path, mode)` for a local path (text as UTF-8), `tf.io.gfile.GFile` for a URI."""
    if is_uri(path):
        return _gfile().GFile(str(path), mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")


def exists(path) -> bool:
    return _gfile().exists(str(path)) if is_uri(path) else os.path.exists(path)


def isdir(path) -> bool:
    return _gfile().isdir(str(path)) if is_uri(path) else os.path.isdir(path)


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a temporary local path (same extension as `path`, so writers that add one keep it); on success
    it replaces `path`, on error it is removed. Local: a rename next to `path`. URI: one upload (an object
    appears whole when its upload ends)."""
    root, ext = os.path.splitext(path)
    if is_uri(path):
        fd, tmp = tempfile.mkstemp(suffix=ext)
        os.close(fd)
    else:
        tmp = f"{root}.tmp{ext}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        yield tmp
        if is_uri(path):
            _gfile().copy(tmp, path, overwrite=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def scratch_dir(near: str) -> Iterator[str]:
    """A temporary local folder, removed at exit: next to `near` for a local path (the same disk, for large
    intermediate files), in the system's temporary folder for a URI."""
    parent = None if is_uri(near) else os.path.dirname(os.path.abspath(near))
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".scratch-", dir=parent)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def upload_dir(local: str, uri: str, last: Optional[str] = None) -> None:
    """Replace the folder `uri` by the local folder `local`'s files. Object stores have no folder rename, so
    the folder is never whole in between: `UPLOADING_MARKER` is written first and removed at the end, and
    `last` (the file that marks the folder complete, e.g. manifest.json) is removed first and uploaded last,
    so a reader never takes a half-replaced folder for a complete one."""
    gfile = _gfile()
    marker = os.path.join(uri, UPLOADING_MARKER)
    gfile.makedirs(uri)
    with gfile.GFile(marker, "w") as f:
        f.write("an upload of this folder is under way or was cut short\n")
    if last and gfile.exists(os.path.join(uri, last)):
        gfile.remove(os.path.join(uri, last))
    for entry in gfile.listdir(uri):
        old = os.path.join(uri, entry.rstrip("/"))
        if entry.rstrip("/") == UPLOADING_MARKER:
            continue
        if gfile.isdir(old):
            gfile.rmtree(old)
        else:
            gfile.remove(old)
    names = []
    for folder, _, files in os.walk(local):
        names += [os.path.relpath(os.path.join(folder, name), local) for name in files]
    for name in sorted(names, key=lambda n: n == last):
        target = os.path.join(uri, name)
        gfile.makedirs(os.path.dirname(target))
        gfile.copy(os.path.join(local, name), target, overwrite=True)
    gfile.remove(marker)
