"""Resident memory of a child process tree (the runner plus its Beam workers), sampled in a thread while it runs."""
from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from typing import List, Optional, Sequence, Tuple

import psutil


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and all its descendants now (0 when it has exited)."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


@dataclasses.dataclass
class SampledRun:
    """A finished child process: exit code, wall seconds and its (unix time, tree RSS bytes) samples."""

    returncode: int
    wall_seconds: float
    samples: List[Tuple[float, int]]

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> int:
        """Largest sample within [start, end] (the whole run by default)."""
        values = [rss for t, rss in self.samples if start <= t <= end]
        return max(values) if values else 0


def run_sampled(cmd: Sequence[str], log, interval: float = 0.5, env: Optional[dict] = None) -> SampledRun:
    """Run `cmd` to its end (output to the open file `log`, environment `env`), sampling its tree's RSS every
    `interval` seconds."""
    samples: List[Tuple[float, int]] = []
    start, done = time.time(), threading.Event()
    proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env)

    def sample():
        while not done.is_set():
            samples.append((time.time(), tree_rss(proc.pid)))
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    returncode = proc.wait()
    done.set()
    thread.join()
    return SampledRun(returncode, time.time() - start, samples)
