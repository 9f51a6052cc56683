"""Benchmark results on disk: one JSON file per benchmark part (and per tagged experiment) in a results folder."""
from __future__ import annotations

import glob
import json
import os
import shlex
from typing import Dict, List, Optional

from mean_tf.errors import MeanTFError
from mean_tf.runtime.files import write_json

PARTS = ("train", "input", "serving", "pipeline")


def result_path(results_dir: str, part: str, tag: Optional[str] = None) -> str:
    return os.path.join(results_dir, f"{part}-{tag}.json" if tag else f"{part}.json")


def write_result(results_dir: str, part: str, result: Dict, tag: Optional[str] = None) -> str:
    path = result_path(results_dir, part, tag)
    write_json(path, result, indent=2, sort_keys=True)
    return path


def read_result(results_dir: str, part: str, tag: Optional[str] = None) -> Optional[Dict]:
    path = result_path(results_dir, part, tag)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise MeanTFError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_experiments(results_dir: str, part: str) -> List[Dict]:
    """Every tagged result of a part (`<part>-<tag>.json`), oldest first (when its command started; not the files'
    times, which a checkout resets); `_file` is its file name."""
    out = []
    for path in glob.glob(os.path.join(results_dir, f"{part}-*.json")):
        with open(path, encoding="utf-8") as f:
            out.append({**json.load(f), "_file": os.path.basename(path)})
    return sorted(out, key=lambda e: (e.get("environment", {}).get("time", ""), e["_file"]))


# --write-docs only picks the default --results, which the command line spells out.
_NOT_OPTIONS = {"func", "command", "debug", "part", "command_line", "write_docs", "verbose"}


def command_line(args) -> str:
    """The `python -m benchmarks.perf <part> ...` command that reproduces a parsed one, every option spelled out."""
    parts = ["python", "-m", "benchmarks.perf", args.part]
    for key, value in sorted(vars(args).items()):
        if key in _NOT_OPTIONS or value is None or value is False or value == "" or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "overrides":
            parts += [w for item in value for w in ("--set", item)]
        elif value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, ",".join(str(v) for v in value)]
        else:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)
