"""What a benchmark ran on: hardware, library versions, threading settings, machine load, git commit."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from typing import Dict

PACKAGES = ("tensorflow", "tf-keras", "tfx", "tensorflow-transform", "tensorflow-model-analysis", "apache-beam",
            "numpy", "pandas")
SIMD_FLAGS = {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"}  # what decides the matmul rate


def _cpuinfo(key: str) -> str:
    """The first `key : value` of /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "")
    except OSError:
        return ""


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10).stdout.strip()


def git_commit() -> str:
    try:
        return _git("rev-parse", "--short", "HEAD") + ("+dirty" if _git("status", "--porcelain", "-uno") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def describe() -> Dict:
    """Hardware, versions and settings of this process (TensorFlow threading read if it is loaded)."""
    import psutil

    tf = sys.modules.get("tensorflow")
    threads = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "inter_op": tf.config.threading.get_inter_op_parallelism_threads()} if tf is not None else {}
    return {
        "cpu": _cpuinfo("model name") or platform.processor() or "unknown",
        "cpu_flags": sorted(set(_cpuinfo("flags").split()) & SIMD_FLAGS),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(), "tf_threads": threads,
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}},
        "env": {k: v for k, v in os.environ.items() if k.startswith(("TF_", "OMP_")) and "KEY" not in k},
        "git_commit": git_commit(), "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average": load_average(),
    }
