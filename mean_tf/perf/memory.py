"""Resident memory of a process tree over time (the runner plus its Beam worker processes), sampled in a thread."""
from __future__ import annotations

import threading
import time
from typing import List, Tuple

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


class RSSSampler:
    """`with RSSSampler(pid, interval) as s:` records (unix time, tree RSS bytes) every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.samples: List[Tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> int:
        """Largest sample within [start, end] (the whole run by default)."""
        values = [rss for t, rss in self.samples if start <= t <= end]
        return max(values) if values else 0
