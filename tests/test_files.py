"""Atomic files: the target is either the old file or the whole new one, never a partial write."""
import json
import os

import pytest

from mean_tf.runtime import files


def test_write_json_replaces_the_file_whole(tmp_path):
    path = str(tmp_path / "sub" / "state.json")
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2}, indent=2)
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == {"a": 2}
    assert os.listdir(tmp_path / "sub") == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "state.json")
    files.write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        files.write_json(path, {"a": object()})  # not JSON: fails half-way through the dump
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == {"a": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_temporary_keeps_the_extension(tmp_path):
    with files.atomic_file(str(tmp_path / "best.npz")) as tmp:
        assert tmp.endswith(".npz") and tmp != str(tmp_path / "best.npz")
        open(tmp, "wb").close()
    assert os.listdir(tmp_path) == ["best.npz"]
