"""The benchmarks behind `mean-tf perf` (`suite`, one module per measurement), rendered by `report`."""
