"""Performance benchmarks behind `mean-tf perf` (issue 9): training throughput against a measured matmul
roofline (`throughput`, `flops`, `roofline`, `profile`), the input pipeline (`input_pipeline`), serving
latency through the TF1 Session loader (`serving`), pipeline scaling with time per component and peak
memory (`pipeline_scaling`, `memory`, `projection`); results are JSON files (`results`) rendered into
docs/performance.md (`report`)."""
