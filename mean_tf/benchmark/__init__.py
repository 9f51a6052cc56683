"""`mean-tf benchmark`: the paper's experiments (Table 1, ablations, δ and n sweeps, targeting study) on public data."""
