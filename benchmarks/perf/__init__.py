"""The benchmarks behind `python -m benchmarks.perf` (`suite`, one module per measurement), rendered by `report`."""
