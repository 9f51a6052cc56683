"""`python -m benchmarks.perf PART ...` (see benchmarks/perf/cli.py)."""
from benchmarks.perf.cli import main

raise SystemExit(main())
