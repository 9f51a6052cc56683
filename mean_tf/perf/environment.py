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


def _cpuinfo(key: str) -> str:
    """The first `key : value` of /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "")
    except OSError:
        return ""


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_flags() -> list:
    """The SIMD extensions that decide the matmul rate (AVX2, FMA, AVX-512)."""
    return sorted(set(_cpuinfo("flags").split()) & {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"})


def versions() -> Dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> Dict:
    """Hardware, versions and settings of this process (TensorFlow threading read if it is loaded)."""
    import psutil

    threads = {}
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        threads = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                   "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    return {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(), "versions": versions(), "tf_threads": threads,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("TF_", "OMP_")) and "KEY" not in k},
        "git_commit": git_commit(), "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average": load_average(),
    }
